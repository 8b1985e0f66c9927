"""Bureau verification of declarations and daily records: every problem is reported."""

import pytest

from gateway import verify
from gateway.bureau_errors import DeclarationRejected, VerificationError
from gateway.keystore import KeyStore
from testbed import sequences
from testbed.demo_cards import FISCAL_CARD_NO, MACHINE_NO, CardRig
from protocol import crypto

ZERO = sequences.period_sums((0, 0, 0), [])


def totals(counts, lines):
    lines = list(lines) + [(0, 0, 0)] * (6 - len(lines))
    return dict(normal_count=counts[0], return_count=counts[1], void_count=counts[2],
                normal_total=sum(x[1] for x in lines), return_total=sum(x[2] for x in lines),
                lines=[dict(item=i, normal=n, returned=r) for i, n, r in lines])


@pytest.fixture(scope="module")
def period():
    """A till's 3 days (daily records as its fiscal memory keeps them) and their declaration record."""
    rig = CardRig().register().load_roll()
    days = []
    rig.issue(20260105, [(1, 1000), (2, 300)])
    rig.issue(20260105, [(2, 100)], kind=2)
    for date, counts, lines in ((20260105, (1, 1, 0), [(1, 1000, 0), (2, 300, 100)]), (20260106, (0, 0, 0), []),
                                (20260107, (1, 0, 0), [(1, 50, 0)])):
        if date == 20260107:
            rig.issue(20260107, [(1, 50)])
        sig = sequences.daily_close(rig.fiscal, date, sequences.period_sums(counts, lines))
        days.append(dict(date=date, totals=totals(counts, lines), signature=sig))
    data, resp = sequences.declare(rig.fiscal, rig.user, 20260105, 20260107,
                           sequences.period_sums((2, 1, 0), [(1, 1050, 0), (2, 300, 100)]))
    return dict(record=FISCAL_CARD_NO + data + resp, days=days, public_key=rig.cards.fiscal.public_key,
                keystore=rig.keystore)


def test_a_genuine_declaration_verifies(period):
    r = verify.verify_declaration(period["keystore"], period["record"], MACHINE_NO)
    assert r.ok and r.problems == []
    assert (r.start, r.end, r.counts, r.normal_total, r.return_total, r.income) == \
        (20260105, 20260107, (2, 1, 0), 1350, 100, 1250)
    assert r.key_id == 0x82 and r.fiscal_card_no == FISCAL_CARD_NO
    assert verify.check_declaration(period["keystore"], b"\x01" + period["record"], MACHINE_NO).ok  # EF04 form


def test_every_problem_is_reported_not_just_the_first(period):
    """R-VERIFY-RECORDS: verification reports every problem, not just the first."""
    rec = bytearray(period["record"])
    rec[8 + 20] ^= 0x01  # a count inside the declaration: check byte, MAC and signature all fail
    rec[83 + 8] = 7  # status byte: also the response check byte
    r = verify.verify_declaration(period["keystore"], bytes(rec), MACHINE_NO)
    assert not r.ok
    text = " | ".join(r.problems)
    for fragment in ("declaration check byte", "response check byte", "status 7", "MAC1", "no public key"):
        assert fragment in text, text


def test_the_signature_is_checked_even_with_a_known_public_key(period):
    rec = bytearray(period["record"])
    rec[83 + 20] ^= 0x40  # inside the signature
    rec[-1] ^= 0x40  # keep the response check byte right
    r = verify.verify_declaration(period["keystore"], bytes(rec), MACHINE_NO, public_key=period["public_key"])
    assert r.problems == ["declaration signature does not verify"]


def test_another_machine_number_fails_the_mac(period):
    r = verify.verify_declaration(period["keystore"], period["record"], "1234567890123457")
    assert any("MAC1" in p for p in r.problems)


def test_a_keystore_without_the_cards_generation_cannot_verify(period):
    ks = KeyStore([crypto.TEST_MASTER_KEYS[0x81]], test_mode=True)
    r = verify.verify_declaration(ks, period["record"], MACHINE_NO)
    assert r.key_id is None and not r.ok


def test_rejected_declarations_raise_with_all_problems(period):
    with pytest.raises(DeclarationRejected) as e:
        verify.check_declaration(period["keystore"], period["record"][:-1], MACHINE_NO)
    assert e.value.problems == ["record is 160 bytes, expected 161"]


def test_internal_inconsistencies_are_named(period):
    """A record whose totals disagree with its items (made here, so MAC and signature fail as well)."""
    rec = bytearray(period["record"])
    rec[83:87] = (999).to_bytes(4, "big")
    x = 0
    for b in rec[83:160]:
        x ^= b
    rec[160] = x
    r = verify.verify_declaration(period["keystore"], bytes(rec), MACHINE_NO)
    assert any("not the sums of the item amounts" in p for p in r.problems)


# ---- daily records ---------------------------------------------------------------------------------------
def test_daily_records_verify(period):
    assert verify.verify_daily_records(period["public_key"], period["days"]) == []


def test_a_changed_daily_record_fails_and_every_record_is_reported(period):
    """R-VERIFY-RECORDS: every daily record's signature is checked and each finding reported."""
    days = [dict(d) for d in period["days"]]
    days[0] = dict(days[0], totals=totals((1, 1, 0), [(1, 1001, 0), (2, 300, 100)]))
    days[2] = dict(days[2], signature=bytes(64))
    problems = verify.verify_daily_records(period["public_key"], days)
    assert problems == ["20260105: signature does not verify", "20260107: signature does not verify"]


def test_daily_totals_must_be_the_sum_of_their_lines(period):
    bad = dict(period["days"][2])
    bad["totals"] = dict(bad["totals"], normal_total=51)
    assert verify.verify_daily_record(period["public_key"], bad)[0] == "20260107: totals are not the sums of the lines"


def test_daily_signed_bytes_are_the_daily_collect_sign_data(period):
    d = period["days"][2]
    raw = verify.daily_signed_bytes(d["date"], d["totals"])
    assert raw[:4] == bytes.fromhex("20260107") and len(raw) == 70
    crypto.verify_record(period["public_key"], crypto.SigKind.DAILY, raw, d["signature"])


# ---- the period against its days ----------------------------------------------------------------------------
def test_the_declaration_matches_its_daily_records(period):
    r = verify.check_declaration(period["keystore"], period["record"], MACHINE_NO)
    assert verify.check_period(r, period["days"], period["public_key"]) == []


def test_a_missing_day_and_different_sums_are_reported(period):
    r = verify.check_declaration(period["keystore"], period["record"], MACHINE_NO)
    problems = verify.check_period(r, [period["days"][0], period["days"][1]])
    assert problems[0] == "no daily record for 20260107"
    assert any("declared counts" in p for p in problems) and any("per-item" in p for p in problems)
    with pytest.raises(VerificationError, match="20260107"):
        verify.require(problems, "period check")
