"""The rules catalogue holds: every rule has a case, every tag names a rule, thresholds have one home,
every "domain §N" citation resolves in docs/DOMAIN.md, and docs/RULES.md is fresh.

What counts as a case (docs/RULES.md): a conformance case listing the rule under `rules:`, or a test
function in tests/test_*.py whose docstring names the rule (for what the till suite cannot show).
"""

import ast
import re
from pathlib import Path

import pytest

from conformance import runner
from protocol import rules
from protocol import rulesdoc

ROOT = Path(__file__).resolve().parent.parent
TAGS = rulesdoc.scan()
CASES = runner.load_cases()


def test_every_rule_has_a_conformance_case_or_a_tagged_test():
    held = {h.rule.id: h for h in rulesdoc.index(TAGS)}
    bare = [rid for rid, h in held.items() if not h.cases and not h.by_role["tests"]]
    assert not bare, "rules with no case (add `rules:` to a case, or name the rule in a test's docstring): %s" % bare


def test_every_tag_in_the_code_names_a_known_rule():
    unknown = ["%s:%d %s" % (t.path, t.line, t.rule) for t in rulesdoc.unknown_tags(TAGS)]
    assert not unknown, "tags naming no rule of protocol/rules.py: %s" % unknown


def test_every_case_names_known_rules_and_the_text_scan_agrees_with_the_loader():
    from conformance.stateful import MODEL_CASE
    assert all(c.rules and set(c.rules) <= set(rules.BY_ID) for c in CASES + [MODEL_CASE])
    assert rulesdoc.case_rules() == {c.id: c.rules for c in CASES}


def test_a_case_naming_an_unknown_rule_is_a_load_error(tmp_path):
    (tmp_path / "x.yaml").write_text("area: LOCK\ncases:\n  - id: FC-LOCK-900\n    title: t\n"
                                     "    requirement: r\n    rules: [R-NO-SUCH-RULE]\n", encoding="utf-8")
    with pytest.raises(runner.CatalogueError, match="unknown rule R-NO-SUCH-RULE"):
        runner.load_cases(tmp_path)


@pytest.mark.parametrize("rules_line", ["", "    rules: []\n"])
def test_a_case_without_rules_is_a_load_error(tmp_path, rules_line):
    (tmp_path / "x.yaml").write_text("area: LOCK\ncases:\n  - id: FC-LOCK-900\n    title: t\n"
                                     "    requirement: r\n" + rules_line, encoding="utf-8")
    with pytest.raises(runner.CatalogueError, match="rules"):
        runner.load_cases(tmp_path)


def test_tags_are_found_in_comments_and_docstrings_only(tmp_path):
    (tmp_path / "gateway").mkdir()
    (tmp_path / "gateway" / "m.py").write_text(
        '"""Module R-SURCHARGE."""\nX = "R-NOT-A-TAG"  # R-WINDOW-COMPARE\n\n\ndef f():\n    """R-ONE-HOUSEHOLD"""\n',
        encoding="utf-8")
    found = rulesdoc.scan_file(tmp_path / "gateway" / "m.py", tmp_path)
    assert [(t.rule, t.where, t.role) for t in found] == [
        ("R-SURCHARGE", "", "verifiers"), ("R-WINDOW-COMPARE", "", "verifiers"), ("R-ONE-HOUSEHOLD", "f", "verifiers")]


def test_the_tag_pattern_takes_rule_ids_not_arithmetic():
    assert rules.TAG.findall("sectors F .. F+R-1; R-LOCK-MAC, R-WARN-FM.") == ["R-LOCK-MAC", "R-WARN-FM"]


def test_rules_md_is_fresh():
    text = (ROOT / "docs" / "RULES.md").read_text(encoding="utf-8")
    assert text == rulesdoc.markdown(rulesdoc.index(TAGS)), "docs/RULES.md is stale: run make gen"


# ------------------------------------------------------------------------------------------ thresholds
# Host modules where a threshold once was a literal: each now reads it from protocol.rules.
THRESHOLD_HOMES = {
    "conformance/model.py": ["CARD_MAC_TRIES", "WARN_LIMIT_PERCENT"],
    "gateway/stations/surcharge.py": ["SURCHARGE_PER_10K_PER_DAY", "FILING_DAY_OF_MONTH"],
    "hw_sim/cards/iso.py": ["CARD_PIN_TRIES"],
    "protocol/apdu.py": ["CARD_MAC_TRIES"],
}
# Host code scanned for a threshold-named constant bound to a number: every host package.
HOST = ["protocol", "hw_sim", "gateway", "conformance", "testbed"]
THRESHOLD_WORDS = {"MAC_TRIES", "PIN_TRIES", "PER_10K", "WARN_DAYS", "WARN_INVOICES", "WARN_PERCENT",
                   "SERVICE_YEARS", "PERMILLE", "LIMIT_PERCENT", "FILING_DAY"} | set(rules.THRESHOLDS)


def _host_files():
    for entry in HOST:
        path = ROOT / entry
        yield from (sorted(path.rglob("*.py")) if path.is_dir() else [path])


@pytest.mark.parametrize("path,names", sorted(THRESHOLD_HOMES.items()))
def test_host_thresholds_come_from_the_catalogue(path, names):
    text = (ROOT / path).read_text(encoding="utf-8")
    for name in names:
        assert re.search(r"THRESHOLDS\[\"%s\"\]|threshold\(\"%s\"\)" % (name, name), text), (path, name)


def test_no_host_module_binds_a_threshold_to_a_literal():
    found = []
    for path in _host_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, ast.AnnAssign) else []
            value = getattr(node, "value", None)
            if not (isinstance(value, ast.Constant) and type(value.value) is int):
                continue
            for t in targets:
                name = getattr(t, "id", getattr(t, "attr", "")).upper()
                if any(word in name for word in THRESHOLD_WORDS):
                    found.append("%s:%d %s = %d" % (path.relative_to(ROOT), node.lineno, name, value.value))
    assert not found, "thresholds belong in protocol/rules.py: %s" % found


# ------------------------------------------------------------------------------------------ citations
CITATION = re.compile(r"domain (?:§§?\s?)((?:\d+(?:\.\d+)?)(?:\s?(?:-|–|,|and)\s?§?\d+(?:\.\d+)?)*)")


def _sections() -> set[str]:
    text = (ROOT / "docs" / "DOMAIN.md").read_text(encoding="utf-8")
    return set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", text, re.M))


def _cited():
    for top in ("firmware", "hw_sim", "gateway", "conformance", "protocol", "testbed", "tests", "bench", "docs"):
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix not in (".py", ".md", ".yaml") or ".venv" in path.parts or not path.is_file():
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                for m in CITATION.finditer(line):
                    for num in re.findall(r"\d+(?:\.\d+)?", m.group(1)):
                        yield path.relative_to(ROOT).as_posix(), n, num


def test_docs_domain_md_has_every_section_the_code_cites():
    sections = _sections()
    assert {"1", "2", "3", "3.1", "3.7", "4", "5", "7.1", "7.10"} <= sections
    missing = ["%s:%d domain §%s" % c for c in _cited() if c[2] not in sections]
    assert not missing, "citations of sections docs/DOMAIN.md lacks: %s" % missing


def test_the_citation_reader_sees_ranges_and_lists():
    line = "domain §3.5-3.7; domain §3.4, §7.1 and domain §4 (lock)"
    assert [n for m in CITATION.finditer(line) for n in re.findall(r"\d+(?:\.\d+)?", m.group(1))] == \
        ["3.5", "3.7", "3.4", "7.1", "4"]


SEED = re.compile(r"seed ([一二三四五六七八九十]+\([一二三四五六七八九十]+\))")


def test_every_seed_paragraph_cited_is_summarised_in_docs_domain_md():
    text = (ROOT / "docs" / "DOMAIN.md").read_text(encoding="utf-8")
    summarised = set(re.findall(r"^\| ([一二三四五六七八九十]+\([一二三四五六七八九十]+\)) \|", text, re.M))
    cited = {m for r in rules.RULES for m in SEED.findall(r.source)}
    for top in ("firmware", "hw_sim", "gateway", "conformance", "protocol", "tests", "docs"):
        for path in (ROOT / top).rglob("*"):
            if path.suffix in (".py", ".md", ".yaml") and path.is_file() and ".venv" not in path.parts:
                cited |= set(SEED.findall(path.read_text(encoding="utf-8")))
    assert cited and cited <= summarised, "seed paragraphs cited but not in DOMAIN.md: %s" % (cited - summarised)
