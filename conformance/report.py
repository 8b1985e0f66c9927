"""Reports of a run: JSON (everything), JUnit XML (for CI), and a self-contained HTML certificate page.

The certificate's overall verdict is PASS only when every counted case passed: a "fail" makes it FAIL;
else an "error" (the suite could not judge a case: no reply within the time limit, a link fault) makes
it ERROR, a run to repeat, not a verdict on the device; else a "not tested" case makes it INCOMPLETE
(the device lacked a capability, so the lab has not shown conformance there).  Provisional cases
(awaiting a ruling) are listed but not counted.

A run under TEST keys or with NON-FISCAL cards (the demo card set, a vendor's test board) says so in a
banner at the top of the certificate and in `test_run` of the JSON: it shows the protocol behaviour,
it does not certify a device for sale.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import xml.etree.ElementTree as ET
from pathlib import Path

from . import SUITE_VERSION
from .runner import AREAS, Limits, Verdict


def overall_verdict(counts: dict) -> str:
    """PASS, FAIL, ERROR or INCOMPLETE from the counts of case verdicts (the one rule, §4)."""
    if counts.get("fail"):
        return "FAIL"
    if counts.get("error"):
        return "ERROR"
    if counts.get("not tested"):
        return "INCOMPLETE"
    return "PASS"


def summary(verdicts: list[Verdict]) -> dict:
    counted = [v for v in verdicts if not v.provisional]
    counts = {k: sum(1 for v in counted if v.verdict == k) for k in ("pass", "fail", "not tested", "error")}
    overall = overall_verdict(counts)
    areas = {}
    for v in counted:
        a = areas.setdefault(v.area, {"pass": 0, "fail": 0, "not tested": 0, "error": 0})
        a[v.verdict] += 1
    area_verdicts = {name: overall_verdict(a) for name, a in areas.items()}
    return {"overall": overall, "counts": counts, "cases": len(verdicts), "counted": len(counted),
            "provisional": len(verdicts) - len(counted), "areas": areas, "area_verdicts": area_verdicts}


def test_run(identity: dict) -> dict:
    """Whether the run used TEST keys or NON-FISCAL cards, and the banner that says so (empty: neither)."""
    keys = bool(identity.get("test_keys"))
    cards = bool(identity.get("non_fiscal"))
    used = [w for w, on in (("the published TEST keys", keys), ("NON-FISCAL cards", cards)) if on]
    banner = ""
    if used:
        banner = ("TEST RUN: this device was tested with %s. The verdict shows how the firmware behaves; it "
                  "does not certify a device for fiscal use." % " and ".join(used))
    return {"test_keys": keys, "non_fiscal": cards, "banner": banner}


def document(verdicts: list[Verdict], identity: dict, *, dut: str, seed: int | None = None,
             started: str | None = None, seconds: float = 0.0, extra: dict | None = None,
             time_scale: float = 1.0) -> dict:
    return {"suite": "fiscal-conformance", "suite_version": SUITE_VERSION, "dut": dut, "seed": seed,
            "date": started or _dt.datetime.now().isoformat(timespec="seconds"), "seconds": round(seconds, 2),
            "time_scale": time_scale, "test_run": test_run(identity), "device": identity,
            "summary": summary(verdicts), "verdicts": [v.as_dict() for v in verdicts], **(extra or {})}


def write_json(doc: dict, path: Path) -> None:
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False, default=_jsonable) + "\n", encoding="utf-8")


def _jsonable(o):
    if isinstance(o, (bytes, bytearray)):
        return o.hex()
    return str(o)


def write_junit(doc: dict, path: Path) -> None:
    suites = ET.Element("testsuites", name="fiscal-conformance %s" % doc["suite_version"])
    by_area: dict[str, list] = {}
    for v in doc["verdicts"]:
        by_area.setdefault(v["area"], []).append(v)
    for area, vs in sorted(by_area.items()):
        suite = ET.SubElement(suites, "testsuite", name="%s %s" % (area, AREAS.get(area, "")),
                              tests=str(len(vs)), failures=str(sum(v["verdict"] == "fail" for v in vs)),
                              errors=str(sum(v["verdict"] == "error" for v in vs)),
                              skipped=str(sum(v["verdict"] == "not tested" or bool(v["provisional"]) for v in vs)),
                              time="%.3f" % sum(v["seconds"] for v in vs))
        for v in vs:
            tc = ET.SubElement(suite, "testcase", classname=area, name="%s %s" % (v["id"], v["title"]),
                               time="%.3f" % v["seconds"])
            ET.SubElement(tc, "properties").append(ET.Element("property", name="requirement",
                                                               value=v["requirement"]))
            if v["provisional"]:
                ET.SubElement(tc, "skipped", message="provisional: %s (%s)" % (v["provisional"], v["verdict"]))
            elif v["verdict"] == "fail":
                ET.SubElement(tc, "failure", message=v["detail"][:500]).text = _evidence_text(v)
            elif v["verdict"] == "error":
                ET.SubElement(tc, "error", message=v["detail"][:500]).text = _evidence_text(v)
            elif v["verdict"] == "not tested":
                ET.SubElement(tc, "skipped", message="not tested: " + v["detail"])
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)


def _evidence_text(v: dict) -> str:
    lines = [v["detail"], ""]
    for e in v["evidence"]:
        lines.append(">> " + e["sent"])
        for r in e["received"]:
            lines.append("<< " + r)
        if e.get("note"):
            lines.append("-- " + e["note"])
    return "\n".join(lines)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:70em;color:#222}
h1{margin-bottom:.2em}.v{font-weight:bold;padding:.1em .5em;border-radius:.3em}
.PASS,.pass{background:#c8f0c8}.FAIL,.fail,.error,.ERROR{background:#f6c6c6}.INCOMPLETE,.not{background:#f3e3b0}
.banner{border:3px solid #b00;background:#fde2e2;color:#600;font-size:1.3em;font-weight:bold;padding:.6em 1em;
margin:1em 0}
table{border-collapse:collapse;width:100%;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .5em;
text-align:left;vertical-align:top}th{background:#eee}details pre{white-space:pre-wrap;font-size:.8em}
.small{font-size:.85em;color:#555}"""


def render_html(doc: dict) -> str:
    e = html.escape
    s = doc["summary"]
    dev = doc.get("device") or {}
    out = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
           "<title>Conformance certificate %s</title><style>%s</style></head><body>" % (e(str(dev.get("machine_no", ""))), _CSS),
           *(["<div class='banner' id='test-run'>%s</div>" % e(doc["test_run"]["banner"])]
             if (doc.get("test_run") or {}).get("banner") else []),
           "<h1>Fiscal till conformance certificate</h1>",
           "<p class='small'>GB 18240 fiscal cash register toolkit, suite fiscal-conformance %s</p>" % e(doc["suite_version"]),
           "<p>Overall verdict: <span class='v %s'>%s</span></p>" % (s["overall"], s["overall"]),
           "<table><tr><th>Device</th><td>%s</td></tr>" % e(str(dev.get("model", "?"))),
           "<tr><th>Machine number</th><td>%s</td></tr>" % e(str(dev.get("machine_no", "?"))),
           "<tr><th>Firmware version</th><td>%s</td></tr>" % e(str(dev.get("fw_version", "?"))),
           "<tr><th>Firmware hash (SHA-256)</th><td><code>%s</code></td></tr>" % e(str(dev.get("fw_hash", "?"))),
           "<tr><th>Protocol version</th><td>0x%04X</td></tr>" % int(dev.get("protocol_version", 0) or 0),
           "<tr><th>Connection</th><td>%s (capabilities: %s)</td></tr>" % (
               e(doc["dut"]), e(", ".join(dev.get("dut_capabilities", [])) or "link only")),
           "<tr><th>Date</th><td>%s</td></tr>" % e(doc["date"]),
           "<tr><th>Time limits</th><td>x %g (reply %g s, --time-scale)</td></tr>" % (
               doc.get("time_scale", 1.0), Limits().scaled(doc.get("time_scale", 1.0)).reply),
           "<tr><th>Cases</th><td>%d counted: %s; %d provisional</td></tr></table>" % (
               s["counted"], ", ".join("%d %s" % (n, k) for k, n in s["counts"].items()), s["provisional"]),
           "<p class='small'>A firmware change voids this certificate (domain §7.10): the hash above identifies "
           "the firmware that was tested.</p>",
           "<h2>Verdict per area</h2><table><tr><th>Area</th><th></th><th>pass</th><th>fail</th>"
           "<th>not tested</th><th>error</th><th>verdict</th></tr>"]
    for area, counts in sorted(s["areas"].items()):
        av = s["area_verdicts"][area]
        out.append("<tr><td>%s</td><td>%s</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td>"
                   "<td><span class='v %s'>%s</span></td></tr>" % (
                       e(area), e(AREAS.get(area, "")), counts["pass"], counts["fail"], counts["not tested"],
                       counts["error"], av, av))
    out.append("</table><h2>Cases</h2><table><tr><th>Case</th><th>Title</th><th>Requirement</th>"
               "<th>Verdict</th></tr>")
    for v in doc["verdicts"]:
        cls = v["verdict"].split()[0]
        detail = ""
        if v["verdict"] != "pass" or v["provisional"]:
            ev = "\n".join(">> %s\n%s%s" % (x["sent"], "\n".join("<< " + r for r in x["received"]),
                                            "\n-- " + x["note"] if x.get("note") else "")
                           for x in v["evidence"])
            detail = "<details><summary>%s</summary><pre>%s</pre></details>" % (e(v["detail"][:300]), e(ev))
        prov = " <i>(provisional: %s)</i>" % e(v["provisional"]) if v["provisional"] else ""
        out.append("<tr><td><code>%s</code></td><td>%s%s%s</td><td class='small'>%s</td>"
                   "<td><span class='v %s'>%s</span></td></tr>" % (
                       e(v["id"]), e(v["title"]), prov, detail, e(v["requirement"]), cls, e(v["verdict"])))
    out.append("</table></body></html>")
    return "\n".join(out)


def write_all(doc: dict, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "report.json", "junit": folder / "junit.xml", "html": folder / "certificate.html"}
    write_json(doc, paths["json"])
    write_junit(doc, paths["junit"])
    paths["html"].write_text(render_html(doc), encoding="utf-8")
    return paths
