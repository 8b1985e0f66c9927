"""Generate docs/RULES.md from the rules catalogue (protocol/rules.py) and the tags in the code and cases.

    python -m protocol.rulesdoc            # rewrite docs/RULES.md
    python -m protocol.rulesdoc --check    # exit 1 if docs/RULES.md no longer matches the code

A *tag* is a rule ID (``protocol.rules.TAG``) in a comment or a docstring of a Python file.  Where the tag
sits says what the code does for the rule:

- ``firmware/`` and ``hw_sim/cards/``: an *enforcer* (the till or a card refuses, locks or writes);
- ``gateway/``: a *verifier* (the bureau checks, compares, charges or records);
- ``conformance/model.py``: the *model* function that predicts what a device must do;
- a test function in ``tests/test_*.py`` whose docstring names the rule: a *test* of the rule;
- anywhere else: a *reference*.

A conformance case names its rules under ``rules:`` (conformance/cases/*.yaml).  **What counts as a case**:
a conformance case naming the rule, or, for a rule the till suite cannot show (the bureau's side, the
printed paper, fiscal memory filled to capacity), a test function whose docstring names it.
tests/test_rules.py fails when a rule has neither, or when a tag names no rule.

Only the standard library is used here (``protocol`` may import nothing else but construct and
cryptography): the case files are read as text, and tests/test_rules.py checks that reading against
``conformance.runner.load_cases``.
"""

from __future__ import annotations

import ast
import io
import re
import sys
import tokenize
from pathlib import Path
from typing import NamedTuple

from .rules import BY_ID, RULES, TAG, Rule

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "RULES.md"
CASES = ROOT / "conformance" / "cases"
SCANNED = ("firmware", "hw_sim", "gateway", "conformance", "protocol", "testbed", "tests", "bench")
SKIPPED = ("protocol/rules.py",)  # the catalogue itself: its IDs are definitions, not tags

ROLES = ("enforcers", "verifiers", "model", "tests", "references")
ROLE_TITLES = {"enforcers": "enforced by", "verifiers": "verified by", "model": "model",
               "tests": "tests", "references": "also cited in"}


class Tag(NamedTuple):
    rule: str  # the ID as written (it may name no rule: the test reports that)
    path: str  # relative to the repository root, with /
    line: int
    where: str  # the enclosing function or class (qualified), or "" at module level
    role: str
    in_docstring: bool


# ------------------------------------------------------------------------------------------ the scan
def _scopes(tree: ast.AST) -> list[tuple[int, int, str, ast.AST]]:
    """(first line, last line, qualified name, node) of every function and class."""
    out: list[tuple[int, int, str, ast.AST]] = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                out.append((child.lineno, child.end_lineno or child.lineno, name, child))
                walk(child, name + ".")
            else:
                walk(child, prefix)

    walk(tree, "")
    return out


def _docstring_lines(tree: ast.AST) -> set[int]:
    """The lines covered by docstrings (module, class, function)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


def _role(path: str, where: str, in_docstring: bool) -> str:
    if path.startswith(("firmware/", "hw_sim/cards/")):
        return "enforcers"
    if path.startswith("gateway/"):
        return "verifiers"
    if path == "conformance/model.py":
        return "model"
    if path.startswith("tests/test_") and in_docstring and where.split(".")[-1].startswith("test"):
        return "tests"
    return "references"


def scan_file(path: Path, root: Path = ROOT) -> list[Tag]:
    """Every tag in the comments and docstrings of one Python file."""
    rel = path.relative_to(root).as_posix()
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    scopes = _scopes(tree)
    docs = _docstring_lines(tree)
    found: list[tuple[int, str, bool]] = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            found += [(tok.start[0], m.group(0), False) for m in TAG.finditer(tok.string)]
        elif tok.type == tokenize.STRING and tok.start[0] in docs:
            for i, text in enumerate(tok.string.split("\n")):
                found += [(tok.start[0] + i, m.group(0), True) for m in TAG.finditer(text)]
    tags = []
    for line, rule, in_doc in found:
        inside = [s for s in scopes if s[0] <= line <= s[1]]
        where = max(inside, key=lambda s: s[0])[2] if inside else ""
        tags.append(Tag(rule, rel, line, where, _role(rel, where, in_doc), in_doc))
    return tags


def scan(root: Path = ROOT) -> list[Tag]:
    """Every tag in the Python files of the scanned folders."""
    tags: list[Tag] = []
    for top in SCANNED:
        for path in sorted((root / top).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel in SKIPPED or "/.venv/" in rel or "/build/" in rel:
                continue
            tags += scan_file(path, root)
    return tags


_CASE_ID = re.compile(r"^\s*-\s+id:\s*(\S+)\s*$")
_CASE_RULES = re.compile(r"^\s*rules:\s*\[([^\]]*)\]\s*(?:#.*)?$")


def case_rules(folder: Path = CASES) -> dict[str, list[str]]:
    """{case id: the rule IDs of its `rules:` line}, read from the case files as text."""
    out: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*.yaml")):
        case = None
        for line in path.read_text(encoding="utf-8").splitlines():
            m = _CASE_ID.match(line)
            if m:
                case = m.group(1)
                continue
            m = _CASE_RULES.match(line)
            if m and case is not None:
                out[case] = [r.strip() for r in m.group(1).split(",") if r.strip()]
                case = None
    return out


# ------------------------------------------------------------------------------------------ the index
class Holding(NamedTuple):
    """What the code and the cases do for one rule."""
    rule: Rule
    cases: list[str]
    by_role: dict[str, list[str]]  # role -> sorted "path::where" (or "path" at module level)


def index(tags: list[Tag] | None = None, cases: dict[str, list[str]] | None = None) -> list[Holding]:
    tags = scan() if tags is None else tags
    cases = case_rules() if cases is None else cases
    out = []
    for rule in RULES:
        by_role: dict[str, list[str]] = {role: [] for role in ROLES}
        for t in tags:
            if t.rule == rule.id:
                entry = "%s::%s" % (t.path, t.where) if t.role == "tests" else \
                    ("%s::%s" % (t.path, t.where) if t.where else t.path)
                if entry not in by_role[t.role]:
                    by_role[t.role].append(entry)
        out.append(Holding(rule, sorted(c for c, ids in cases.items() if rule.id in ids),
                           {role: sorted(v) for role, v in by_role.items()}))
    return out


def _places(entries: list[str]) -> str:
    """"path::a", "path::b", "path" -> "`path` (`a`, `b`)", one item per file."""
    files: dict[str, list[str]] = {}
    for e in entries:
        path, _, where = e.partition("::")
        names = files.setdefault(path, [])
        if where:
            names.append(where)
    return "; ".join("`%s`" % path + (" (%s)" % ", ".join("`%s`" % n for n in names) if names else "")
                     for path, names in sorted(files.items()))


def unknown_tags(tags: list[Tag] | None = None) -> list[Tag]:
    """Tags that name no rule of the catalogue."""
    return [t for t in (scan() if tags is None else tags) if t.rule not in BY_ID]


# ------------------------------------------------------------------------------------------ the document
HEAD = """# Fiscal rules

<!-- generated by `python -m protocol.rulesdoc` from protocol/rules.py and the tags in the code: do not edit -->

Every fiscal rule this project enforces, once, with its ID. The table lives in `protocol/rules.py`
(text, source, thresholds); this document adds where each rule is held:

- **enforced by**: firmware (`firmware/`) and card (`hw_sim/cards/`) code whose comments or docstrings
  carry the rule's ID;
- **verified by**: bureau code (`gateway/`: verification, window, audit, sales, surcharge) carrying it;
- **model**: the functions of the conformance model (`conformance/model.py`) carrying it;
- **conformance cases**: the cases (conformance/cases/*.yaml) that list it under `rules:`;
- **tests**: test functions (tests/test_*.py) whose docstring names it;
- **also cited in**: other code carrying the ID.

**What counts as a case.** A rule is held when at least one conformance case lists it, or, for a rule
the till suite cannot show (the bureau's side, the printed paper, fiscal memory filled to capacity), at
least one test function names it in its docstring. tests/test_rules.py fails when a rule is held by
neither, when a tag or a case names an unknown rule, and when this document is stale.

**Sources.** `seed X(Y)` is article X, paragraph Y of 国税发〔2004〕108号; `domain §N` is
[DOMAIN.md](DOMAIN.md) §N; `ours` is a choice this project made. Thresholds are defined in
`protocol/rules.py` only: `protocol.codegen` writes them into the firmware's `codes.py` as `RULE_<NAME>`,
and the host side imports them from `protocol.rules`.
"""


def _summary(rows: list[Holding]) -> list[str]:
    out = ["| rule | title | cases | tests | enforced | verified |", "|---|---|---|---|---|---|"]
    for h in rows:
        out.append("| [%s](#%s) | %s | %d | %d | %d | %d |" % (
            h.rule.id, h.rule.id.lower(), h.rule.title, len(h.cases), len(h.by_role["tests"]),
            len(h.by_role["enforcers"]), len(h.by_role["verifiers"])))
    return out


def _section(h: Holding) -> list[str]:
    r = h.rule
    out = ["", "## %s" % r.id, "", "**%s.** %s" % (r.title[:1].upper() + r.title[1:], r.text), "",
           "- **source:** %s" % r.source]
    if r.thresholds:
        out.append("- **thresholds:** " + ", ".join("`%s` = %d" % kv for kv in sorted(r.thresholds.items())))
    for role in ("enforcers", "verifiers", "model"):
        if h.by_role[role]:
            out.append("- **%s:** %s" % (ROLE_TITLES[role], _places(h.by_role[role])))
    out.append("- **conformance cases:** %s" % (", ".join("`%s`" % c for c in h.cases) or "none (held by tests)"))
    if h.by_role["tests"]:
        out.append("- **tests:** %s" % "; ".join("`%s`" % t for t in h.by_role["tests"]))
    if h.by_role["references"]:
        out.append("- **%s:** %s" % (ROLE_TITLES["references"], _places(h.by_role["references"])))
    return out


def markdown(rows: list[Holding] | None = None) -> str:
    rows = index() if rows is None else rows
    lines = [HEAD.rstrip("\n"), "", "%d rules." % len(rows), ""] + _summary(rows)
    for h in rows:
        lines += _section(h)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = markdown()
    if "--check" in argv:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print("docs/RULES.md is stale: run `python -m protocol.rulesdoc` (or `make gen`).")
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
