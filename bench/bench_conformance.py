"""Conformance suite benchmark: a full run against the in-process simulator (every scenario case plus the
model-based run), cases per second, and the mutant kill rate (every mutant against the whole catalogue,
hinted cases first, until killed).  Targets: full run <= 300 s on a 2-core machine; kill rate 100 %.

    .venv/bin/python bench/bench_conformance.py [--examples 25]   ->  bench/results/conformance.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conformance import SUITE_VERSION, dut, runner, stateful  # noqa: E402
from testbed.mutants import MUTANTS, hunt  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "conformance.json"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--examples", type=int, default=25)
    args = p.parse_args()
    make = dut.dut_factory("sim")
    cases = runner.load_cases()

    t0 = time.perf_counter()
    verdicts = runner.run_cases(make, cases)
    t_cases = time.perf_counter() - t0
    t1 = time.perf_counter()
    found = stateful.model_run(make, seed=0, examples=args.examples)
    t_model = time.perf_counter() - t1
    full = time.perf_counter() - t0
    counts = {k: sum(v.verdict == k for v in verdicts if not v.provisional) for k in runner.VERDICTS}

    kills = {}
    t2 = time.perf_counter()
    for m in MUTANTS:
        vs = hunt(m, make, cases)
        killer = next((v.id for v in vs if v.verdict in ("fail", "error")), None)
        kills[m.name] = killer
    t_mut = time.perf_counter() - t2
    killed = sum(1 for k in kills.values() if k)

    result = {
        "suite_version": SUITE_VERSION, "python": platform.python_version(), "machine": platform.machine(),
        "cases": len(cases), "case_verdicts": counts, "provisional": sum(bool(v.provisional) for v in verdicts),
        "scenario_seconds": round(t_cases, 2), "cases_per_second": round(len(cases) / t_cases, 1),
        "model_run": {"examples": args.examples, "verdict": found.verdict.verdict, "seconds": round(t_model, 2)},
        "full_run_seconds": round(full, 2), "full_run_target_seconds": 300,
        "mutants": len(MUTANTS), "mutants_killed": killed, "kill_rate": round(killed / len(MUTANTS), 4),
        "killed_by": kills, "mutant_sweep_seconds": round(t_mut, 2),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
