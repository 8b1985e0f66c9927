"""The import table of docs/ARCHITECTURE.md is the law: every module of every package imports only what its
row allows, function-local imports included, with no list of exceptions.

The table is read from the document itself, so the document and the code cannot drift apart: a new edge
needs a new entry in the table, where a reviewer sees it.
"""

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TABLE_HEAD = "| package | role | may import |"
ANYTHING = "anything"


def read_rows():
    """{path prefix: allowed top-level names, or None for "anything"} from the table."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    lines = text[text.index(TABLE_HEAD):].splitlines()[2:]
    rows = {}
    for line in lines:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        allowed = None if ANYTHING in cells[-1] else set(re.findall(r"`([\w.]+)`", cells[-1]))
        for path in re.findall(r"`([\w/.]+)`", cells[0]):
            rows[path] = allowed
    return rows


ROWS = read_rows()


def row_of(path):
    """The row whose path is the longest prefix of this file's path (relative to the root)."""
    rel = path.relative_to(ROOT).as_posix()
    best = None
    for prefix in ROWS:
        if rel == prefix or rel.startswith(prefix.rstrip("/") + "/"):
            if best is None or len(prefix) > len(best):
                best = prefix
    return best


def own_names(prefix):
    """A package may import itself: its own top-level name (and a row's single-module entry)."""
    name = Path(prefix).name
    return {name[:-3] if name.endswith(".py") else name}


def imported(tree):
    """(line, top-level name) of every absolute import anywhere in the module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.lineno, (node.module or "").split(".")[0]


def modules():
    for prefix in sorted(ROWS):
        base = ROOT / prefix
        files = [base] if base.suffix == ".py" else sorted(base.rglob("*.py"))
        for path in files:
            if row_of(path) == prefix:
                yield prefix, path


MODULES = list(modules())


def test_the_table_names_every_host_package():
    named = set(ROWS)
    for package in ("protocol", "hw_sim", "gateway", "conformance", "testbed", "firmware/fiscal_till"):
        assert package in named, "docs/ARCHITECTURE.md has no row for %s" % package


def test_every_row_has_modules():
    assert {prefix for prefix, _ in MODULES} == set(ROWS)


@pytest.mark.parametrize("prefix,path", MODULES, ids=[p.relative_to(ROOT).as_posix() for _, p in MODULES])
def test_module_imports_only_what_its_row_allows(prefix, path):
    allowed = ROWS[prefix]
    if allowed is None:
        return
    allowed = allowed | own_names(prefix) | set(sys.stdlib_module_names)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad = ["line %d imports %s" % (line, name) for line, name in imported(tree) if name not in allowed]
    assert not bad, "%s (row `%s` of docs/ARCHITECTURE.md): %s" % (
        path.relative_to(ROOT), prefix, "; ".join(bad))
