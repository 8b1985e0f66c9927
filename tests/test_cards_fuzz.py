"""Bad input: every card's APDU handler against random, structured and mutated APDUs (hypothesis).

Properties, for every APDU in every sequence, from several card states:
  * `process` never raises and always answers at least a status word, never 6F00 (a simulator bug);
  * the status word is one of the error table's card words;
  * a refused command returns no data and changes no card state, except the counters and single-use
    values a refusal exists to move (hw_sim/cards/iso.py): PIN tries down with 63Cx/6983, MAC failures up
    and the lock with 9302/9303, verified flags cleared by a failed VERIFY/authentication, a challenge or
    registration random consumed by a failed authentication.
The default run sends a few thousand APDUs; the `slow` variant (make test-full) sends over 100 000.
"""

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testbed import sequences
from testbed.demo_cards import INSPECTOR_PIN, CardRig, seeded_rng
from gateway import issuance
from gateway.readers import SimReader
from gateway.usercard import UserCardSession
from protocol import apdu as apdu_layouts

ALLOWED_SW = {0x9000, 0x6700, 0x6901, 0x6982, 0x6983, 0x6985, 0x6A80, 0x6A82, 0x9302, 0x9303, 0x9401, 0x6D00,
              0x6E00, 0x63C0, 0x63C1, 0x63C2, 0x63C3}
ISO_INS = [apdu_layouts.INS_SELECT, apdu_layouts.INS_READ_BINARY, apdu_layouts.INS_UPDATE_BINARY, apdu_layouts.INS_READ_RECORD, apdu_layouts.INS_UPDATE_RECORD,
           apdu_layouts.INS_GET_CHALLENGE, apdu_layouts.INS_INTERNAL_AUTHENTICATE, apdu_layouts.INS_EXTERNAL_AUTHENTICATE, apdu_layouts.INS_VERIFY,
           apdu_layouts.INS_GET_RESPONSE]
GB_INS = [apdu_layouts.INS_GET_REGISTER_NB, apdu_layouts.INS_REGISTER_SIGN, apdu_layouts.INS_TERMINAL_REGISTER, apdu_layouts.INS_ISSUE_INVOICE,
          apdu_layouts.INS_DECLARE_DUTY, apdu_layouts.INS_UPDATE_CONTROLS, apdu_layouts.INS_INPUT_INVOICE_NB, apdu_layouts.INS_VERIFY_FISCAL_PIN,
          apdu_layouts.INS_DAILY_COLLECT_SIGN, apdu_layouts.INS_DATA_COLLECT, apdu_layouts.INS_DISTRIBUTE_INVOICE_NB]
DATA_LENS = [0, 2, 4, 5, 6, 7, 8, 16, 22, 29, 38, 44, 45, 71, 75, 161, 162, 202, 210]


class Recorder:
    """A slot wrapper that keeps every APDU sent through it (the corpus of valid commands)."""

    def __init__(self, slot, log):
        self.slot, self.log = slot, log

    def transmit(self, apdu):
        self.log.append(bytes(apdu))
        return self.slot.transmit(apdu)

    def __getattr__(self, name):  # power_on, power_off: the slot's
        return getattr(self.slot, name)


def _bureau(rig, user):
    session = UserCardSession(SimReader(user), rig.keystore)
    session.open()
    session.authenticate()
    return session


def _lifecycle():
    """Run a whole lifecycle; return the card states met on the way and every APDU sent."""
    log = []
    rig = CardRig(seed=7)
    f, u, m = (Recorder(s, log) for s in (rig.fiscal, rig.user, rig.management))
    states = {"fiscal-fresh": rig.cards.fiscal, "management": rig.cards.management}
    states = {k: (type(v), copy.deepcopy(v.state), copy.deepcopy(v.session)) for k, v in states.items()}
    pin = sequences.verify_pin(f, sequences.initialize(f, u))
    _bureau(rig, u).add_roll(issuance.issue_roll(rig.keystore, fiscal_card_no=rig.cards.fiscal_data.card_no,
                                          machine_no="1234567890123456", code="1440012345", start=1, end=50))
    rig.user.power_on()
    sequences.load_roll(f, u, 1)
    for n, (date, lines, kind) in enumerate([(20260105, [(1, 1000), (2, 20)], 1), (20260105, [(2, 5)], 2),
                                             (20260105, [], 3)], 1):
        sequences.issue(f, date, kind, n, lines, sum(a for _, a in lines))
    sequences.send(f, 0x00, apdu_layouts.INS_GET_CHALLENGE, le=8)
    states["fiscal-issuing"] = (type(rig.cards.fiscal), copy.deepcopy(rig.cards.fiscal.state),
                                copy.deepcopy(rig.cards.fiscal.session))
    sums = sequences.period_sums((1, 1, 1), [(1, 1000, 0), (2, 20, 5)])
    sequences.daily_close(f, 20260105, sums)
    sequences.declare(f, u, 20260101, 20260105, sums)
    session = _bureau(rig, u)
    (recno, report), = session.verify_pending()
    session.clear(recno, report, issuance.Limits(20260228, 1_000_000, 50_000_000, 2_000_000))
    session.add_roll(issuance.issue_roll(rig.keystore, fiscal_card_no=rig.cards.fiscal_data.card_no,
                                  machine_no="1234567890123456", code="1440012345", start=51, end=60))
    rig.user.power_on()
    states["fiscal-declared"] = (type(rig.cards.fiscal), copy.deepcopy(rig.cards.fiscal.state),
                                 copy.deepcopy(rig.cards.fiscal.session))
    states["user"] = (type(rig.cards.user), copy.deepcopy(rig.cards.user.state), copy.deepcopy(rig.cards.user.session))
    sequences.read_records(u, 0xEF01)
    sequences.clear_unlock(f, u, "1234567890123456")
    sequences.verify_pin(f, pin)
    _bureau(rig, u)
    states["user-bureau"] = (type(rig.cards.user), copy.deepcopy(rig.cards.user.state),
                             copy.deepcopy(rig.cards.user.session))
    sequences.authenticate_inspector(f, m, issuance.pin_block(INSPECTOR_PIN))
    for fid in (0xEF01, 0xEF02, 0xEF03, 0xEF04, 0xEF05):
        sequences.read_binary(f, fid)
    return states, log


STATES, CORPUS = _lifecycle()
SETUPS = sorted(STATES)


def fresh(setup):
    cls, state, session = STATES[setup]
    card = cls(copy.deepcopy(state), rng=seeded_rng(3))
    card.powered = True
    card.session = copy.deepcopy(session)
    return card


@st.composite
def structured(draw):
    cla = draw(st.sampled_from([0x00, 0xC0]) | st.integers(0, 255))
    ins = draw(st.sampled_from(ISO_INS + GB_INS) | st.integers(0, 255))
    p1 = draw(st.sampled_from([0, 0, 1, 2, 4, 0x80, 0x81, 0x82, 0x83, 0x85, 0x86, 0x87]) | st.integers(0, 255))
    p2 = draw(st.sampled_from([0, 0, 1, 2, 0x0C, 0x0C, 0x24, 0x2C, 0x34]) | st.integers(0, 255))
    n = draw(st.sampled_from(DATA_LENS) | st.integers(0, 300))
    data = draw(st.binary(min_size=n, max_size=n))
    le = draw(st.none() | st.sampled_from([8, 16, 22, 64, 78, 256]) | st.integers(1, 65536))
    return apdu_layouts.Command.build(dict(cla=cla, ins=ins, p1=p1, p2=p2, data=data, le=le))


@st.composite
def mutated(draw):
    raw = bytearray(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.integers(0, 3))
        if op == 0 and raw:
            raw[draw(st.integers(0, len(raw) - 1))] ^= draw(st.integers(1, 255))
        elif op == 1:
            raw = raw[:draw(st.integers(0, len(raw)))]
        elif op == 2:
            raw += draw(st.binary(max_size=4))
        elif op == 3 and len(raw) > 5:  # change the data but keep the APDU well-formed
            k = draw(st.integers(5, len(raw) - 1))
            raw[k] = draw(st.integers(0, 255))
    return bytes(raw)


APDUS = st.one_of(structured(), mutated(), st.sampled_from(CORPUS), st.binary(max_size=24))

# field -> which refusals may move it, and only in the direction the rule allows
_MOVES = {
    ("state", "pin_tries"): lambda b, a, sw, ins: a < b and (sw & 0xFFF0 == 0x63C0 or sw == 0x6983),
    ("state", "mac_failures"): lambda b, a, sw, ins: a == b + 1 and sw in (0x9302, 0x9303),
    ("state", "locked"): lambda b, a, sw, ins: a and sw == 0x9303,
    ("session", "pin_ok"): lambda b, a, sw, ins: not a and ins in (apdu_layouts.INS_VERIFY_FISCAL_PIN, apdu_layouts.INS_VERIFY),
    ("session", "challenge"): lambda b, a, sw, ins: a is None and ins == apdu_layouts.INS_EXTERNAL_AUTHENTICATE,
    ("session", "bureau"): lambda b, a, sw, ins: not a and ins == apdu_layouts.INS_EXTERNAL_AUTHENTICATE,
    ("session", "reg_random"): lambda b, a, sw, ins: a is None and ins == apdu_layouts.INS_TERMINAL_REGISTER,
}


def check_one(card, apdu: bytes) -> None:
    before = card.snapshot()
    resp = card.process(apdu)
    assert isinstance(resp, bytes) and len(resp) >= 2
    sw = resp[-2] << 8 | resp[-1]
    assert sw in ALLOWED_SW, "SW %04X for %s" % (sw, apdu.hex())
    if sw == 0x9000:
        return
    assert resp == resp[-2:], "a refusal carried data"
    after = card.snapshot()
    ins = apdu[1] if len(apdu) > 1 else -1
    for part, b_dict, a_dict in (("state", before[0], after[0]), ("session", before[1], after[1])):
        for key in b_dict:
            if b_dict[key] != a_dict[key]:
                rule = _MOVES.get((part, key))
                assert rule and rule(b_dict[key], a_dict[key], sw, ins), \
                    "SW %04X to %s changed %s.%s" % (sw, apdu.hex(), part, key)


def run_sequence(setup, apdus, counter=None):
    card = fresh(setup)
    for apdu in apdus:
        check_one(card, apdu)
    if counter is not None:
        counter[0] += len(apdus)


def test_the_corpus_holds_every_card_command():
    assert {a[1] for a in CORPUS} >= set(GB_INS) | set(ISO_INS) - {apdu_layouts.INS_GET_RESPONSE, apdu_layouts.INS_UPDATE_BINARY}


@pytest.mark.parametrize("setup", SETUPS)
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(apdus=st.lists(APDUS, min_size=1, max_size=24))
def test_fuzz_cards(setup, apdus):
    run_sequence(setup, apdus)


@pytest.mark.slow
@pytest.mark.parametrize("setup", SETUPS)
def test_fuzz_cards_long(setup):
    counter = [0]

    @settings(max_examples=700, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(apdus=st.lists(APDUS, min_size=25, max_size=35))
    def campaign(apdus):
        run_sequence(setup, apdus, counter)

    campaign()
    assert counter[0] >= 100_000 // len(SETUPS) + 1, counter[0]
