"""The till's side of every card exchange, as runnable reference sequences (docs/CARDS.md, "Lifecycle").

The firmware implements these with fiscal_till.apdu over its HAL slots; tests, the conformance suite and
demos use these functions over any object with `transmit(apdu) -> response` (a CardSlot, a card, a
reader).  Each function is the exact APDU order the till must follow, and raises `CardRefused` (status
word and INS) on the first status word that is not 9000.

Every session with a card begins with SELECT of its DF (the card type check), and with the fiscal card
by VERIFY_FISCAL_PIN when the session will issue, load a roll or clear-unlock; the till stores the new
PIN in fiscal memory before anything else (the card accepts the previous PIN once more, so a lost reply
costs nothing).
"""

from __future__ import annotations

from protocol import apdu
from protocol import cardfiles

GB, ISO = apdu.CLA_GB, apdu.CLA_ISO


class CardRefused(Exception):
    """A card answered a status word other than 9000."""

    def __init__(self, sw: int, ins: int):
        super().__init__("card answered %04X to INS %02X" % (sw, ins))
        self.sw, self.ins = sw, ins


def send(card, cla: int, ins: int, p1: int = 0, p2: int = 0, data: bytes = b"", le: int | None = None) -> bytes:
    raw = card.transmit(apdu.Command.build(dict(cla=cla, ins=ins, p1=p1, p2=p2, data=bytes(data), le=le)))
    sw = raw[-2] << 8 | raw[-1]
    if sw != apdu.SW_OK:
        raise CardRefused(sw, ins)
    return raw[:-2]


def select(card, df_name: bytes) -> None:
    send(card, ISO, apdu.INS_SELECT, 0x04, 0x00, df_name)  # 00 A4 04 00 Lc <DF name>


def read_binary(card, fid: int) -> bytes:
    return send(card, ISO, apdu.INS_READ_BINARY, 0x80 | fid & 0x1F, 0, le=256)  # 00 B0 8s 00 00


def read_records(card, fid: int) -> list[bytes]:
    """00 B2 nn (s<<3|4) 00 for nn = 1, 2, ... until 6A82."""
    out = []
    while True:
        try:
            out.append(send(card, ISO, apdu.INS_READ_RECORD, len(out) + 1, (fid & 0x1F) << 3 | 4, le=256))
        except CardRefused as e:
            if e.sw == 0x6A82:
                return out
            raise


# ---- initialization (税控初始化) ---------------------------------------------------------------------------
def find_till(user, machine_no: str, fiscal_card_no: bytes) -> int:
    """The till's record number in the user card's EF06 (it serves this till), or CardRefused 6A82."""
    for n, raw in enumerate(read_records(user, cardfiles.USER_EF_TILLS), 1):
        till = cardfiles.UserTill.parse(raw)
        if till.machine_no == machine_no and till.card_no == fiscal_card_no:
            return n
    raise CardRefused(0x6A82, apdu.INS_READ_RECORD)


def initialize(fiscal, user) -> bytes:
    """GET_REGISTER_NB -> REGISTER_SIGN -> TERMINAL_REGISTER; returns the initial PIN.

    Before it the till checks EF02 of the fiscal card (machine number, validity) and finds itself in the
    user card's EF06 (find_till)."""
    select(fiscal, apdu.DF_FISCAL)
    select(user, apdu.DF_USER)
    nb = send(fiscal, GB, apdu.INS_GET_REGISTER_NB, le=16)  # C0 F0 00 00 10
    mac2 = send(user, GB, apdu.INS_REGISTER_SIGN, data=nb, le=4)  # C0 E4 00 00 10 <16> 04
    return send(fiscal, GB, apdu.INS_TERMINAL_REGISTER, data=mac2, le=8)  # C0 F1 00 00 04 <MAC2> 08


def verify_pin(fiscal, pin: bytes) -> bytes:
    """C0 F9 00 00 08 <PIN> 08 -> the new PIN, to be stored before anything else."""
    return send(fiscal, GB, apdu.INS_VERIFY_FISCAL_PIN, data=pin, le=8)


def open_fiscal(fiscal, pin: bytes) -> bytes:
    """Start of a fiscal-card session that will issue, load or clear: SELECT, VERIFY; the new PIN."""
    select(fiscal, apdu.DF_FISCAL)
    return verify_pin(fiscal, pin)


# ---- invoice rolls (验旧售新) -------------------------------------------------------------------------------
def load_roll(fiscal, user, till_record: int) -> bytes:
    """DISTRIBUTE_INVOICE_NB on the user card, INPUT_INVOICE_NB on the fiscal card (PIN verified).

    The till first reads the fiscal card's EF05: a roll with numbers left means no loading (6985)."""
    select(user, apdu.DF_USER)
    roll = send(user, GB, apdu.INS_DISTRIBUTE_INVOICE_NB, till_record, 0, le=apdu.RollData.sizeof())  # C0 E9 rr 00 16
    send(fiscal, GB, apdu.INS_INPUT_INVOICE_NB, data=roll)  # C0 F7 00 00 16 <roll>
    return roll


def recover_roll(fiscal, user, machine_no: str) -> bytes | None:
    """After a power failure between DISTRIBUTE and INPUT: the user card's EF07 holds the roll; load it
    unless the fiscal card already did (its EF05 shows it).  Returns the roll loaded now, or None."""
    select(user, apdu.DF_USER)
    last = cardfiles.UserLastRoll.parse(read_binary(user, cardfiles.USER_EF_LAST_ROLL))
    loaded = cardfiles.FiscalRoll.parse(read_binary(fiscal, cardfiles.FISCAL_EF_ROLL))
    if last.machine_no != machine_no or (loaded.code, loaded.start) == (last.roll.code, last.roll.start):
        return None
    roll = apdu.RollData.build(last.roll)
    send(fiscal, GB, apdu.INS_INPUT_INVOICE_NB, data=roll)
    return roll


# ---- issuing, daily close, declaration ------------------------------------------------------------------
def issue(fiscal, date: int, kind: int, number: int, lines: list[tuple[int, int]], total: int) -> bytes:
    """C0 F2 00 00 2C <IssueInvoiceData> 08 -> 税控码 (8).  lines: up to 6 (item, amount)."""
    slots = [dict(item=i, amount=a) for i, a in lines] + [dict(item=0, amount=0)] * (6 - len(lines))
    data = apdu.IssueInvoiceData.build(dict(date=date, kind=kind, number=number, lines=slots, total=total))
    return send(fiscal, GB, apdu.INS_ISSUE_INVOICE, data=data, le=8)


def period_sums(counts: tuple[int, int, int], lines: list[tuple[int, int, int]]) -> dict:
    """PeriodSums from counts (normal, return, void) and up to 6 (item, normal, returned)."""
    lines = list(lines) + [(0, 0, 0)] * (6 - len(lines))
    return dict(normal_count=counts[0], return_count=counts[1], void_count=counts[2],
                items=[x[0] for x in lines], normal=[x[1] for x in lines], returned=[x[2] for x in lines])


def daily_close(fiscal, date: int, sums: dict) -> bytes:
    """C0 FB 00 00 47 <DailyCollectSignData> 40 -> signature (64).  Every calendar day, in order."""
    return send(fiscal, GB, apdu.INS_DAILY_COLLECT_SIGN, data=apdu.DailyCollectSignData.build(dict(date=date, sums=sums)),
                le=64)


def declare(fiscal, user, start: int, end: int, sums: dict) -> tuple[bytes, bytes]:
    """DECLARE_DUTY on the fiscal card, DATA_COLLECT of its input and output onto the user card.
    Returns (DeclareDutyData, DeclareDutyResponse) bytes.  After a lost DECLARE_DUTY reply the till
    rebuilds the response from the fiscal card's EF04 (status SIGNED) instead of declaring again."""
    data = apdu.DeclareDutyData.build(dict(start=start, end=end, sums=sums))
    response = send(fiscal, GB, apdu.INS_DECLARE_DUTY, data=data, le=apdu.DeclareDutyResponse.sizeof())  # C0 F4
    card_no = cardfiles.FiscalIdentity.parse(read_binary(fiscal, cardfiles.FISCAL_EF_IDENTITY)).card_no
    select(user, apdu.DF_USER)
    send(user, GB, apdu.INS_DATA_COLLECT, data=card_no + data + response)  # C0 E6 00 00 A1 <161>
    return data, response


# ---- clear-unlock (税控更新) -----------------------------------------------------------------------------
def clear_unlock(fiscal, user, machine_no: str) -> dict:
    """The user card's EF01 record for this machine -> UPDATE_CONTROLS (PIN verified in this session).
    Returns the fiscal card's new EF01 (controls, period_end, sequence) for the clear-unlock record.
    CardRefused 6A82: no control data for this till on the user card; 6985 from the fiscal card: not
    (yet) cleared at the bureau, or already applied."""
    select(user, apdu.DF_USER)
    for raw in read_records(user, cardfiles.USER_EF_CONTROLS):
        rec = cardfiles.UserControls.parse(raw)
        if rec.machine_no == machine_no:
            send(fiscal, GB, apdu.INS_UPDATE_CONTROLS, data=bytes([rec.key_id]) + rec.ciphertext + rec.mac2)  # C0 F6
            return cardfiles.FiscalControls.parse(read_binary(fiscal, cardfiles.FISCAL_EF_CONTROLS))
    raise CardRefused(0x6A82, apdu.INS_READ_RECORD)


# ---- inspection and clock change --------------------------------------------------------------------------
def authenticate_inspector(fiscal, management, pin: bytes | None = None):
    """Prove a management card genuine through the fiscal card; returns its certificate (rights inside).

        management: 00 A4 04 00 07 "CHECK01"; [00 20 00 01 08 <PIN>]
        fiscal:     00 84 00 00 08                        -> challenge (8)
        management: 00 88 00 00 08 <challenge> 00         -> InspectorProof (202)
        fiscal:     00 82 00 02 CA <InspectorProof>       -> 9000: genuine
    """
    select(management, apdu.DF_MANAGEMENT)
    if pin is not None:
        send(management, ISO, apdu.INS_VERIFY, 0, 0x01, pin)
    challenge = send(fiscal, ISO, apdu.INS_GET_CHALLENGE, le=apdu.CHALLENGE_LEN)
    proof = send(management, ISO, apdu.INS_INTERNAL_AUTHENTICATE, data=challenge, le=256)
    send(fiscal, ISO, apdu.INS_EXTERNAL_AUTHENTICATE, 0, apdu.KEYREF_INSPECTOR, proof)
    return apdu.InspectorProof.parse(proof).certificate
