"""The firmware answers what protocol/command_rules.py (docs/PROTOCOL.md "States and check order") says:
every command in every till state, and the first failing check's error when a request fails several."""

import pytest

from protocol import command_rules, commands, errors, frame, records, status
from protocol.command_rules import DAMAGED, IN_SERVICE, LOCK, LOCKED, NEW, OK
from protocol.journal_format import FISCAL_HDR_SIZE, FISCAL_REC_OVERHEAD
from testbed.rigs import TillRig, ready

NOT_LINK_ERRORS = {LOCK, "CARD_*"}


# ---- the four till states ----------------------------------------------------------------------------
def _in_service():
    rig = ready()
    rig.ok("ISSUE_INVOICE", **rig.invoice(100))  # GET_DOCUMENT has an invoice to find
    return rig


def _locked():
    """NO_ROLL: the roll's one number is used."""
    rig = TillRig()
    rig.initialize()
    rig.bureau_sells_roll(1, 1)
    rig.ok("LOAD_ROLL")
    rig.ok("ISSUE_INVOICE", **rig.invoice(100))
    return rig


def _locked_past_deadline():
    """DEADLINE and NO_ROLL: the demo deadline (2026-01-31) passed, the roll used up."""
    rig = _locked()
    rig.rtc.set(20260202, 100000)
    return rig


def _damaged():
    """A bit flipped in the record after INIT (fiscal sector 0 is the tail mount parses): INIT readable."""
    rig = _in_service()
    init_envelope = FISCAL_REC_OVERHEAD + records.InitRecord.sizeof()
    rig.flash.flip_bit(FISCAL_HDR_SIZE + init_envelope + FISCAL_REC_OVERHEAD, 0)  # in the next record's body
    rig.reboot()
    return rig


RIGS = {NEW: TillRig, IN_SERVICE: _in_service, LOCKED: _locked, DAMAGED: _damaged}
FIXTURES = {  # rig -> (the table's column, GET_STATUS state and lock reasons it shows)
    "new": (TillRig, NEW, 0, ["NOT_INITIALIZED"]),
    "in_service": (_in_service, IN_SERVICE, 1, []),
    "locked_no_roll": (_locked, LOCKED, 1, ["NO_ROLL"]),
    "locked_past_deadline": (_locked_past_deadline, LOCKED, 1, ["DEADLINE", "NO_ROLL"]),
    "damaged": (_damaged, DAMAGED, 1, ["FM_DAMAGED"]),
}


@pytest.mark.parametrize("fixture", FIXTURES)
def test_each_state_rig_shows_its_state_in_get_status(fixture):
    make, _column, state, locks = FIXTURES[fixture]
    st = make().status()
    assert (st.state, status.mask_names(st.lock_reasons, status.LOCK_REASONS)) == (state, locks)


# ---- a request that would succeed, given what the state's history allows -----------------------------
def _management_card(rig):
    rig.user_slot.remove()
    rig.user_slot.insert(rig.cards.management)


def _declared(rig):
    rig.ok("DAILY_CLOSE")
    rig.ok("DECLARE", end=0)


def _prepare(name, rig, healthy):
    """Fields of a request that succeeds in a healthy initialized till; the history it needs is made only
    there (a NEW or DAMAGED till cannot record it)."""
    if name == "SET_TIME":
        if rig.status().state == status.STATE_IN_SERVICE:
            _management_card(rig)
        return dict(date=rig.rtc.date + 1, time=80000)  # the rigs' days are never a month's last
    if name == "INITIALIZE":
        return dict(date=rig.rtc.date, time=90000)
    if name == "LOAD_ROLL" and healthy:
        rig.bureau_sells_roll(201, 300)
    if name == "DECLARE" and healthy:
        rig.ok("DAILY_CLOSE")
    if name == "CLEAR_UNLOCK" and healthy:
        _declared(rig)
        rig.bureau_clears(deadline=20260301)
    if name == "INSPECT":
        _management_card(rig)
    return {"ISSUE_INVOICE": rig.invoice(100), "GET_DOCUMENT": dict(number=0), "DECLARE": dict(end=0),
            "READ_JOURNAL": dict(offset=0, length=100), "REPORT": dict(kind=1, start=0, end=0)}.get(name, {})


def _lock_error(rig):
    """The first standing lock's error, as GET_STATUS shows the locks after the request."""
    mask = rig.status().lock_reasons
    return next(r.error for r in status.LOCK_REASONS if mask >> r.bit & 1)


def _expected(value, rig):
    if value == OK:
        return "OK"
    return _lock_error(rig) if value == LOCK else value


@pytest.mark.parametrize("fixture", FIXTURES)
@pytest.mark.parametrize("name", [rules.name for rules in command_rules.RULES])
def test_every_command_in_every_state_answers_what_the_table_says(name, fixture):
    make, state, _, _ = FIXTURES[fixture]
    rig = make()
    fields = _prepare(name, rig, state in (IN_SERVICE, LOCKED))
    got, _, _ = rig.call(name, **fields)
    assert errors.BY_CODE[got].name == _expected(command_rules.BY_NAME[name].states[state], rig)


# ---- several checks fail: the first one's error ---------------------------------------------------------
def _bad_kind(rig):
    return dict(rig.invoice(100), kind=9)


def _remove_user_card(rig):
    rig.user_slot.remove()


def _remove_fiscal_card(rig):
    rig.fiscal_slot.remove()


def _remove_both_cards(rig):
    rig.fiscal_slot.remove()
    rig.user_slot.remove()


def _declared_not_cleared_without_fiscal_card(rig):
    _declared(rig)
    rig.fiscal_slot.remove()


def _clock_before_init(rig):
    rig.rtc.set(20260105, 80000)


def _too_many_zero_lines(rig):
    return rig.invoice(*[0] * (commands.MAX_LINES + 1))


def _unauthorised_item_and_wrong_total(rig):
    return dict(rig.invoice(100, item=9), total=5)


CASES = [  # (command, state, failing check keys, setup(rig) -> fields or None, call keywords)
    ("ISSUE_INVOICE", NEW, {"new", "kind"}, _bad_kind, {}),
    ("ISSUE_INVOICE", DAMAGED, {"damaged", "kind"}, _bad_kind, {}),
    ("ISSUE_INVOICE", LOCKED, {"kind", "lock"}, _bad_kind, {}),
    ("ISSUE_INVOICE", LOCKED, {"total", "lock"}, lambda rig: dict(rig.invoice(100), total=99), {}),
    ("ISSUE_INVOICE", LOCKED, {"lock", "single_limit"}, lambda rig: rig.invoice(2_000_000), {}),
    ("ISSUE_INVOICE", IN_SERVICE, {"too_many_lines", "line"}, _too_many_zero_lines, {}),
    ("ISSUE_INVOICE", IN_SERVICE, {"line", "total"}, _unauthorised_item_and_wrong_total, {}),
    ("ISSUE_INVOICE", IN_SERVICE, {"clock_behind", "kind"},
     lambda rig: (_clock_before_init(rig), _bad_kind(rig))[1], {}),
    ("ISSUE_INVOICE", IN_SERVICE, {"day_closed", "kind"}, lambda rig: (rig.ok("DAILY_CLOSE"), _bad_kind(rig))[1], {}),
    ("ISSUE_INVOICE", IN_SERVICE, {"rid_missing", "payload"}, None, dict(rid=0, payload=b"\x01")),
    ("ISSUE_INVOICE", IN_SERVICE, {"rid_stale", "payload"}, None, dict(rid=1, payload=b"\x01")),
    ("DECLARE", NEW, {"new", "bad_end"}, lambda rig: dict(end=20261399), {}),
    ("DECLARE", IN_SERVICE, {"pending", "bad_end"}, lambda rig: (_declared(rig), dict(end=20261399))[1], {}),
    ("LOAD_ROLL", IN_SERVICE, {"roll_loaded", "user_card"}, _remove_user_card, {}),
    ("CLEAR_UNLOCK", IN_SERVICE, {"not_declared", "user_card"}, _remove_user_card, {}),
    ("SET_TIME", IN_SERVICE, {"bad_date", "mgmt_missing"}, lambda rig: dict(date=20260230, time=80000), {}),
    ("SET_TIME", IN_SERVICE, {"mgmt_missing", "backwards"}, lambda rig: dict(date=20260104, time=80000), {}),
    ("INITIALIZE", IN_SERVICE, {"initialized", "bad_date"}, lambda rig: dict(date=20260230, time=90000), {}),
    ("INSPECT", NEW, {"new", "mgmt_missing"}, None, {}),
    ("REPORT", NEW, {"new", "kind"}, lambda rig: dict(kind=9, start=0, end=0), {}),
    ("REPORT", IN_SERVICE, {"kind", "dates"}, lambda rig: dict(kind=9, start=20261399, end=0), {}),
    ("REPORT", IN_SERVICE, {"dates", "none"}, lambda rig: dict(kind=3, start=20260110, end=20260101), {}),
    ("READ_JOURNAL", IN_SERVICE, {"offset"}, lambda rig: dict(offset=10 ** 9, length=1), {}),
    ("DAILY_CLOSE", NEW, {"new", "fiscal_missing"}, _remove_fiscal_card, {}),
    ("DAILY_CLOSE", DAMAGED, {"damaged", "fiscal_missing"}, _remove_fiscal_card, {}),
    ("INITIALIZE", NEW, {"bad_date", "fiscal_card"},
     lambda rig: (_remove_fiscal_card(rig), dict(date=20260230, time=90000))[1], {}),
    ("INITIALIZE", NEW, {"fiscal_card", "user_card"},
     lambda rig: (_remove_both_cards(rig), dict(date=20260105, time=90000))[1], {}),
    ("LOAD_ROLL", LOCKED, {"session", "user_card"}, _remove_both_cards, {}),
    ("CLEAR_UNLOCK", IN_SERVICE, {"unprocessed", "session"}, _declared_not_cleared_without_fiscal_card, {}),
    ("DECLARE", IN_SERVICE, {"nothing", "fiscal_missing"}, lambda rig: (_remove_fiscal_card(rig), dict(end=0))[1], {}),
    ("INSPECT", IN_SERVICE, {"session", "mgmt_missing"}, _remove_fiscal_card, {}),
]


@pytest.mark.parametrize("name,state,failing,setup,call", CASES,
                         ids=["%s-%s-%s" % (c[0], c[1], "+".join(sorted(c[2]))) for c in CASES])
def test_a_request_failing_several_checks_gets_the_first_checks_error(name, state, failing, setup, call):
    rig = RIGS[state]()
    fields = (setup(rig) if setup else None) or {}
    got, _, _ = rig.call(name, **call, **fields)
    assert errors.BY_CODE[got].name in [_expected(e, rig) for e in command_rules.first_error(name, failing)]


def test_an_unknown_command_is_refused_before_its_request_id_is_looked_at():
    rig = _in_service()
    (reply,) = rig.exchange(frame.request(0x7F, 0, b"\x01"))
    assert reply["status"] == errors.BY_NAME[command_rules.LINK_CHECKS[0].errors[0]].code


# ---- the table itself ---------------------------------------------------------------------------------
def test_every_command_has_rules_for_every_state_naming_known_errors():
    assert [r.name for r in command_rules.RULES] == [c.name for c in commands.COMMANDS]
    for rules in command_rules.RULES:
        assert set(rules.states) == set(command_rules.TILL_STATES), rules.name
        keys = [c.key for c in command_rules.LINK_CHECKS + rules.checks]
        assert len(keys) == len(set(keys)), rules.name
        for value in rules.states.values():
            assert value in (OK, LOCK) or value in errors.BY_NAME, (rules.name, value)
        for check in rules.checks + command_rules.LINK_CHECKS + command_rules.AFTER_CHECKS:
            for e in check.errors:
                assert e in NOT_LINK_ERRORS or e in errors.BY_NAME, (rules.name, check.key, e)
