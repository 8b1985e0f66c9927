"""The case catalogue as Markdown, for docs/CONFORMANCE.md (between the CATALOGUE markers).

    python -m conformance.catalogue          # rewrite the section in docs/CONFORMANCE.md
"""

from __future__ import annotations

from pathlib import Path

from .runner import AREAS, load_cases
from .stateful import MODEL_CASE

DOC = Path(__file__).resolve().parent.parent / "docs" / "CONFORMANCE.md"
BEGIN, END = "<!-- CATALOGUE BEGIN (python -m conformance.catalogue) -->", "<!-- CATALOGUE END -->"


def markdown() -> str:
    cases = load_cases() + [MODEL_CASE]
    out = []
    area = None
    for c in cases:
        if c.area != area:
            area = c.area
            out += ["", "### %s: %s" % (area, AREAS.get(area, "")), "", "| case | checks | rules | requirement |",
                    "|---|---|---|---|"]
        flag = " *(provisional: %s)*" % c.provisional if c.provisional else ""
        rules = ", ".join(c.rules)
        out.append("| `%s` | %s%s | %s | %s |" % (c.id, c.title, flag, rules, c.requirement.replace("|", "/")))
    return "\n".join(out).strip() + "\n"


def main() -> None:
    text = DOC.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    DOC.write_text(head + BEGIN + "\n" + markdown() + END + tail, encoding="utf-8")


if __name__ == "__main__":
    main()
