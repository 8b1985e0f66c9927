"""fiscal-conformance: the certification suite's command line (docs/CONFORMANCE.md).

    fiscal-conformance list [--select FC-LOCK-*]
    fiscal-conformance run --dut sim|mpy|simtill|<port or URL> --report DIR [--select PATTERN ...]
                           [--seed N] [--examples N] [--no-model-run] [--cases DIR] [--time-scale X]

`run` writes DIR/report.json, DIR/junit.xml and DIR/certificate.html and exits 0 only on a full pass
(every counted case passed; "not tested" is not a pass).  Exit codes (EXIT, docs/CONFORMANCE.md):
0 pass; 1 a case failed; 2 usage (one sentence on stderr, nothing written: a --select matching no
case, an unreadable case file, a bad --time-scale, an unreachable device, a report folder that cannot
be written); 3 incomplete (capabilities missing); 4 error (nothing failed, but a case could not be
judged: no reply within the time limit, a link fault).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
import tempfile
import time
from pathlib import Path

from . import SUITE_VERSION
from .dut import DutError, backend_names, dut_factory
from .runner import AREAS, CASES_DIR, TIME_SCALE_ENV, CatalogueError, limits_for, load_cases, run_case, select

_MARK = {"pass": "PASS", "fail": "FAIL", "not tested": "N/T ", "error": "ERR "}
EXIT = {"PASS": 0, "FAIL": 1, "USAGE": 2, "INCOMPLETE": 3, "ERROR": 4}


class UsageError(Exception):
    """A mistake of the person running the suite: one sentence, exit 2."""


def _usage(msg: str) -> int:
    print("fiscal-conformance: %s" % msg, file=sys.stderr)
    return EXIT["USAGE"]


def _model_selected(args) -> bool:
    import fnmatch
    from .stateful import MODEL_CASE
    if getattr(args, "no_model_run", False):
        return False
    return not args.select or any(fnmatch.fnmatchcase(MODEL_CASE.id, p) for p in args.select)


def _selected(args) -> list:
    cases = select(_catalogue(args), args.select)
    if args.select and not cases and not _model_selected(args):
        raise UsageError("--select %s matches no case (see fiscal-conformance list)" % " ".join(args.select))
    return cases


def _list(args) -> int:
    args.no_model_run = True  # list shows the scenario cases
    cases = _selected(args)
    area = None
    for c in cases:
        if c.area != area:
            area = c.area
            print("\n%s - %s" % (area, AREAS.get(area, "")))
        flag = " [provisional]" if c.provisional else ""
        print("  %-13s %s%s\n                %s" % (c.id, c.title, flag, c.requirement))
    print("\n%d cases (suite %s)" % (len(cases), SUITE_VERSION))
    return 0


def _catalogue(args):
    try:
        cases = load_cases(CASES_DIR)
        for folder in args.cases or []:
            cases += load_cases(folder)
    except CatalogueError as e:
        raise UsageError(str(e)) from None
    return cases


def _run(args) -> int:
    """Run the selected cases, then the model-based run, against --dut; write the report; the exit code."""
    from . import report
    out = Path(args.report)
    lim = _limits(args)
    cases = _selected(args)
    if out.exists() and not out.is_dir():
        raise UsageError("the report folder %s is a file" % out)
    with tempfile.TemporaryDirectory(prefix="fc-run-") as workdir:
        make = _factory(args.dut, workdir)
        t0 = time.monotonic()
        started = _dt.datetime.now().isoformat(timespec="seconds")
        identity = _identity(make, lim, args.dut)
        _print_device(identity, len(cases))
        verdicts = [_run_one(make, case, lim, i, len(cases)) for i, case in enumerate(cases)]
        extra: dict = {}
        if _model_selected(args):
            verdicts.append(_model_verdict(make, args, out, extra))
        doc = report.document(verdicts, identity, dut=args.dut, seed=args.seed, started=started,
                              seconds=time.monotonic() - t0, extra=extra, time_scale=lim.scale)
        paths = _write_report(doc, out)
        _print_summary(doc, paths)
        return EXIT[doc["summary"]["overall"]]


def _limits(args):
    """The time limits of --time-scale, also set in the environment: the model run's sessions use them."""
    try:
        lim = limits_for(args.time_scale)
    except ValueError as e:
        raise UsageError("--time-scale: %s" % e) from None
    os.environ[TIME_SCALE_ENV] = repr(lim.scale)
    return lim


def _factory(dut: str, workdir: str):
    try:
        return dut_factory(dut, workdir=workdir)
    except DutError as e:
        raise UsageError(str(e)) from None


def _identity(make, lim, dut: str) -> dict:
    from .runner import device_identity
    try:
        return device_identity(make, lim)
    except (DutError, OSError) as e:
        raise UsageError("cannot reach the device %s: %s" % (dut, e)) from None


def _print_device(identity: dict, n_cases: int) -> None:
    from . import report
    print("fiscal-conformance %s: %s, firmware %s (%s...), %d cases" % (
        SUITE_VERSION, identity.get("model", "?"), identity.get("fw_version", "?"),
        str(identity.get("fw_hash", ""))[:16], n_cases))
    banner = report.test_run(identity)["banner"]
    if banner:
        print(banner)


def _run_one(make, case, lim, i: int, n_cases: int):
    """Run one case and print its line (and the first line of the detail when it failed or erred)."""
    v = run_case(make, case, limits=lim)
    prov = " (provisional)" if v.provisional else ""
    print("[%3d/%d] %s %-13s %s%s" % (i + 1, n_cases, _MARK[v.verdict], v.id, v.title[:60], prov))
    if v.verdict in ("fail", "error"):
        print("          " + v.detail.splitlines()[0][:160])
    sys.stdout.flush()
    return v


def _model_verdict(make, args, out: Path, extra: dict):
    """The model-based run's verdict ("not tested" when the device lacks a capability it needs).

    A shrunk failing scenario is written under out/found and named in extra["found_scenario"].
    """
    from .runner import Verdict
    from .stateful import MODEL_CASE, model_run
    missing = MODEL_CASE.required() - _capabilities(make)
    if missing:
        v = Verdict(MODEL_CASE.id, MODEL_CASE.title, "MODEL", MODEL_CASE.requirement, "not tested",
                    "the device lacks: " + ", ".join(sorted(missing)))
    else:
        print("model-based run: seed %d, %d sequences ..." % (args.seed, args.examples))
        found = model_run(make, seed=args.seed, examples=args.examples, out_dir=out / "found")
        v = found.verdict
        if found.scenario:
            extra["found_scenario"] = str(found.scenario)
            print("          shrunk failure written to %s" % found.scenario)
    print("[model] %s %s  %s" % (_MARK[v.verdict], v.id, v.detail.splitlines()[0][:120]))
    return v


def _capabilities(make) -> set:
    """What the device can do, asked of a probe (left open when the backend keeps one device for the run)."""
    probe = make()
    caps = set(probe.capabilities)
    if not getattr(probe, "persistent", False):
        probe.close()
    return caps


def _write_report(doc: dict, out: Path) -> dict:
    from . import report
    try:
        return report.write_all(doc, out)
    except OSError as e:
        raise UsageError("cannot write the report to %s: %s" % (out, e.strerror or e)) from None


def _print_summary(doc: dict, paths: dict) -> None:
    s = doc["summary"]
    print("\n%s: %s  (%s)  in %.1f s" % (s["overall"], ", ".join("%d %s" % (n, k) for k, n in s["counts"].items()),
                                         "%d provisional" % s["provisional"], doc["seconds"]))
    print("report: %s" % ", ".join(str(p) for p in paths.values()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fiscal-conformance", description="Certification suite for fiscal tills")
    sub = p.add_subparsers(dest="cmd", required=True)
    ls = sub.add_parser("list", help="print the case catalogue")
    ls.add_argument("--select", nargs="*", help="case id patterns, e.g. FC-LOCK-*")
    ls.add_argument("--cases", nargs="*", help="extra folders of case files")
    run = sub.add_parser("run", help="run the suite against a device")
    run.add_argument("--dut", required=True,
                     help="a backend (%s) or a serial port / pyserial URL" % " | ".join(backend_names()))
    run.add_argument("--report", required=True, help="folder for the report")
    run.add_argument("--select", nargs="*", help="case id patterns, e.g. FC-LOCK-*")
    run.add_argument("--seed", type=int, default=0, help="seed of the model-based run")
    run.add_argument("--examples", type=int, default=25, help="sequences in the model-based run")
    run.add_argument("--no-model-run", action="store_true", help="scenario cases only")
    run.add_argument("--cases", nargs="*", help="extra folders of case files (e.g. a found/ scenario)")
    run.add_argument("--time-scale", default=None, metavar="X",
                     help="multiply every time limit by X (default: $%s, else 1)" % TIME_SCALE_ENV)
    args = p.parse_args(argv)
    try:
        if args.cmd == "list":
            return _list(args)
        return _run(args)
    except UsageError as e:
        return _usage(str(e))


if __name__ == "__main__":
    sys.exit(main())
