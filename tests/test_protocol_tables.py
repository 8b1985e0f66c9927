"""The error table, lock reasons and generated artefacts: one definition, everything else follows it."""

import subprocess
import sys

import pytest

from conftest import ROOT
from fiscal_till import codes
from protocol import errors, status


def test_error_codes_are_unique_and_categorised_by_high_byte():
    high = {"ok": 0x00, "link": 0x01, "input": 0x02, "card": 0x03, "fiscal_memory": 0x04, "lock": 0x05,
            "clock": 0x06, "state": 0x07}
    for e in errors.TABLE:
        assert e.code >> 8 == high[e.category], e.name
        assert e.zh and e.en


@pytest.mark.parametrize("sw,ins,name", [
    (0x9000, None, "OK"),
    (0x6700, None, "CARD_WRONG_LENGTH"),
    (0x6901, 0xF1, "CARD_REGISTRATION"),
    (0x6985, None, "CARD_CONDITIONS"),
    (0x6A80, 0xF2, "CARD_BAD_DATA"),
    (0x6A82, None, "CARD_FILE_NOT_FOUND"),
    (0x6982, None, "CARD_SECURITY"),
    (0x63C2, 0xF9, "CARD_PIN_WRONG"),
    (0x63C0, 0xF9, "CARD_PIN_WRONG"),
    (0x6983, 0xF9, "CARD_PIN_BLOCKED"),
    (0x9302, 0xF6, "CARD_MAC"),
    (0x9303, None, "CARD_LOCKED"),
    (0x9401, 0xF2, "CARD_OVER_LIMIT"),
    (0x9401, 0xE9, "CARD_NO_ROLL"),
    (0x6D00, None, "CARD_INS_NOT_SUPPORTED"),
    (0x6E00, None, "CARD_CLA_NOT_SUPPORTED"),
    (0x6F00, None, "CARD_UNEXPECTED_SW"),
])
def test_card_status_words_map_to_one_error_on_both_sides(sw, ins, name):
    assert errors.from_card_sw(sw, ins).name == name
    assert codes.error_for_sw(sw, -1 if ins is None else ins) == errors.BY_NAME[name].code


def test_every_lock_reason_has_its_own_lock_error():
    names = [r.error for r in status.LOCK_REASONS]
    assert len(set(names)) == len(names)
    for r in status.LOCK_REASONS:
        assert errors.BY_NAME[r.error].category == "lock"
    assert len({r.bit for r in status.LOCK_REASONS}) == len(status.LOCK_REASONS)


def test_mask_names_reports_unknown_bits():
    assert status.mask_names(0b11, status.LOCK_REASONS) == ["NOT_INITIALIZED", "DEADLINE"]
    assert status.mask_names(1 << 30, status.LOCK_REASONS) == ["BIT30"]


def test_describe_gives_both_languages():
    assert errors.describe(0x0502) == ("0x0502 LOCK_DEADLINE: invoice deadline passed: declare and clear-unlock"
                                       " / 已过开票截止日期，请申报并清零解锁")
    assert errors.describe(0xBEEF) == "0xBEEF (unknown status)"


def test_firmware_codes_match_the_table():
    for e in errors.TABLE:
        assert getattr(codes, "E_" + e.name) == e.code
    for r in status.LOCK_REASONS:
        assert getattr(codes, "LOCK_" + r.name) == r.bit
    assert dict(codes.LOCK_ERRORS) == {r.bit: errors.BY_NAME[r.error].code for r in status.LOCK_REASONS}


def test_protocol_doc_is_generated_from_the_code():
    r = subprocess.run([sys.executable, "-m", "protocol.docgen", "--check"], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr
