"""The till's card driver: APDUs to the fiscal, user and management cards through the HAL slots.

The APDU order of every lifecycle step is docs/CARDS.md §5 (testbed/sequences.py runs the same
sequences host-side).  Every failure becomes a CardError carrying our error code (protocol/errors.py):
a status word other than 9000 maps through codes.error_for_sw; a slot that raises OSError (card absent,
pulled out, mute) is CARD_NO_RESPONSE, and an empty slot the caller's "missing" code.
"""

import hashlib

from . import apdu, codes, layouts, schema

_CLA_ISO = 0x00
_CLA_GB = 0xC0
_INS_SELECT = 0xA4
_INS_READ_BINARY = 0xB0
_INS_READ_RECORD = 0xB2
_INS_GET_CHALLENGE = 0x84
_INS_INTERNAL_AUTH = 0x88
_INS_EXTERNAL_AUTH = 0x82
_INS_VERIFY = 0x20
_INS_ERASE_BINARY = 0x0E

DF_FISCAL = b"TSAM01"
DF_USER = b"TID01"
DF_MANAGEMENT = b"CHECK01"

EF_CONTROLS = 0xEF01
EF_IDENTITY = 0xEF02
EF_TODAY = 0xEF03
EF_DECLARATION = 0xEF04
EF_ROLL = 0xEF05
UEF_CONTROLS = 0xEF01
UEF_IDENTITY = 0xEF02
UEF_DECLARATIONS = 0xEF04
UEF_TILLS = 0xEF06
UEF_LAST_ROLL = 0xEF07

DECL_NONE = 0
DECL_SIGNED = 1
DECL_CLEARED = 2
KEYREF_INSPECTOR = 0x02
RIGHT_INSPECT = 0x01
RIGHT_CLOCK = 0x02


class CardError(Exception):
    def __init__(self, code, sw=0, ins=0):
        super().__init__(code)
        self.code = code
        self.sw = sw
        self.ins = ins


class Card:
    """One card behind one slot; `missing` is the error code when the slot is empty."""

    def __init__(self, slot, missing, df):
        self.slot = slot
        self.missing = missing
        self.df = df

    def present(self):
        return self.slot is not None and self.slot.present()

    def send(self, cla, ins, p1=0, p2=0, data=b"", le=None):
        if not self.present():
            raise CardError(self.missing)
        try:
            raw = self.slot.transmit(apdu.encode_command(cla, ins, p1, p2, data, le))
            body, sw = apdu.decode_response(raw)
        except (OSError, ValueError):
            raise CardError(codes.E_CARD_NO_RESPONSE)
        if sw != 0x9000:
            raise CardError(codes.error_for_sw(sw, ins), sw, ins)
        return body

    def open(self):
        """Power on and SELECT the card's DF: a card of another kind answers 6A82 -> CARD_WRONG_TYPE."""
        if not self.present():
            raise CardError(self.missing)
        try:
            atr = self.slot.power_on()
        except OSError:
            atr = None
        if atr is None:
            raise CardError(codes.E_CARD_NO_RESPONSE)
        try:
            self.send(_CLA_ISO, _INS_SELECT, 0x04, 0x00, self.df)
        except CardError as e:
            if e.sw == 0x6A82:
                raise CardError(codes.E_CARD_WRONG_TYPE, e.sw, e.ins)
            raise

    def read_binary(self, fid, layout):
        raw = self.send(_CLA_ISO, _INS_READ_BINARY, 0x80 | (fid & 0x1F), 0, b"", 256)
        return self._decode(layout, raw)

    def read_records(self, fid, layout):
        out = []  # type: list
        while True:
            try:
                raw = self.send(_CLA_ISO, _INS_READ_RECORD, len(out) + 1, (fid & 0x1F) << 3 | 4, b"", 256)
            except CardError as e:
                if e.sw == 0x6A82:
                    return out
                raise
            out.append(self._decode(layout, raw))

    @staticmethod
    def _decode(layout, raw):
        try:
            return schema.decode(layout, raw)
        except ValueError:
            raise CardError(codes.E_CARD_BAD_DATA)


class FiscalCard(Card):
    def __init__(self, slot):
        Card.__init__(self, slot, codes.E_CARD_FISCAL_MISSING, DF_FISCAL)

    def identity(self):
        return self.read_binary(EF_IDENTITY, layouts.FISCAL_IDENTITY)

    def controls(self):
        return self.read_binary(EF_CONTROLS, layouts.FISCAL_CONTROLS)

    def today(self):
        return self.read_binary(EF_TODAY, layouts.FISCAL_TODAY)

    def declaration(self):
        return self.read_binary(EF_DECLARATION, layouts.FISCAL_DECLARATION)

    def roll(self):
        return self.read_binary(EF_ROLL, layouts.FISCAL_ROLL)

    def get_register_nb(self):
        return self.send(_CLA_GB, 0xF0, 0, 0, b"", 16)

    def terminal_register(self, mac2):
        return self.send(_CLA_GB, 0xF1, 0, 0, mac2, 8)

    def verify_pin(self, pin):
        """VERIFY_FISCAL_PIN: returns the new PIN, which the caller stores before anything else."""
        return self.send(_CLA_GB, 0xF9, 0, 0, pin, 8)

    def issue(self, date, kind, number, slots, total):
        data = schema.encode(layouts.ISSUE_INVOICE_DATA,
                             {"date": date, "kind": kind, "number": number, "lines": slots, "total": total}, 64)
        return self.send(_CLA_GB, 0xF2, 0, 0, data, 8)

    def daily_sign(self, date, sums):
        data = schema.encode(layouts.DAILY_COLLECT_SIGN_DATA, {"date": date, "sums": sums}, 96)
        return self.send(_CLA_GB, 0xFB, 0, 0, data, 64)

    def declare(self, start, end, sums):
        """(command data, response bytes) of DECLARE_DUTY."""
        data = schema.encode(layouts.DECLARE_DUTY_DATA, {"start": start, "end": end, "sums": sums}, 96)
        return data, self.send(_CLA_GB, 0xF4, 0, 0, data, 78)

    def input_roll(self, roll_bytes):
        self.send(_CLA_GB, 0xF7, 0, 0, roll_bytes)

    def update_controls(self, blob):
        self.send(_CLA_GB, 0xF6, 0, 0, blob)

    def challenge(self):
        return self.send(_CLA_ISO, _INS_GET_CHALLENGE, 0, 0, b"", 8)

    def external_authenticate(self, proof):
        self.send(_CLA_ISO, _INS_EXTERNAL_AUTH, 0, KEYREF_INSPECTOR, proof)


class UserCard(Card):
    def __init__(self, slot):
        Card.__init__(self, slot, codes.E_CARD_USER_MISSING, DF_USER)

    def identity(self):
        return self.read_binary(UEF_IDENTITY, layouts.FISCAL_IDENTITY)

    def find_till(self, machine_no, fiscal_card_no):
        """The record number of (machine, fiscal card) in EF06; CARD_FOREIGN_TAXPAYER if absent."""
        n = 0
        for till in self.read_records(UEF_TILLS, layouts.USER_TILL):
            n += 1
            if till["machine_no"] == machine_no and till["card_no"] == fiscal_card_no:
                return n
        raise CardError(codes.E_CARD_FOREIGN_TAXPAYER)

    def register_sign(self, nb):
        return self.send(_CLA_GB, 0xE4, 0, 0, nb, 4)

    def distribute_roll(self, till_record):
        return self.send(_CLA_GB, 0xE9, till_record, 0, b"", 22)

    def last_roll(self):
        return self.read_binary(UEF_LAST_ROLL, layouts.USER_ROLL)

    def erase_last_roll(self, content):
        """Empty EF07 if it still holds `content` (its bytes as read): ERASE BINARY, compare-and-erase."""
        self.send(_CLA_ISO, _INS_ERASE_BINARY, 0x80 | (UEF_LAST_ROLL & 0x1F), 0, content)

    def data_collect(self, card_no, declare_data, response):
        self.send(_CLA_GB, 0xE6, 0, 0, card_no + declare_data + response)

    def declarations(self):
        return self.read_records(UEF_DECLARATIONS, layouts.USER_DECLARATION)

    def controls_for(self, machine_no):
        """key id + ciphertext + MAC2 of this till's control data, or None."""
        for rec in self.read_records(UEF_CONTROLS, layouts.USER_CONTROLS):
            if rec["machine_no"] == machine_no:
                return bytes([rec["key_id"]]) + rec["ciphertext"] + rec["mac2"]
        return None


_MAC_KEY = "mac"
MAC_MEMORY = 8  # refused MAC-bearing data remembered (digests), newest kept


def mac_digest(data):
    """8 bytes that name one piece of MAC-bearing data (a roll, a control-data set)."""
    return hashlib.sha256(data).digest()[:8]


class MacGuard:  # R-LOCK-MAC
    """The fiscal card's MAC tries, as the till knows them, and the data the card refused (nvram "mac":
    count byte, then up to MAC_MEMORY digests of 8 bytes).

    9302 carries no count and no GB command reads one, but every counted MAC command reaches the fiscal
    card through this till (it is the till's SAM), so the till counts: before it sends MAC-bearing data
    it stores count + 1 (a power cut or a mute card then errs on the safe side), a success stores 0 (the
    card resets its count too), 9302 keeps count + 1 and remembers the data, 9303 means locked, and any
    other answer (6985, 6A80: the card refused before or after the MAC check without counting) restores
    the count.  Control data of another key generation also answers 9302 without being counted: the
    till counts it anyway, which only makes the warning come early.  Data refused once is never sent
    again (CARD_MAC / CARD_ROLL_REFUSED without a card command); with one try left the data goes to
    the card only when the request confirms it (FLAG_CONFIRM_MAC), else CARD_MAC_LAST_TRY."""

    def __init__(self, nv):
        self.nv = nv

    def load(self):
        raw = self.nv.get(_MAC_KEY)
        if raw is None:
            return 0, []
        raw = bytes(raw)
        if not raw or (len(raw) - 1) % 8 or raw[0] > codes.RULE_CARD_MAC_TRIES:
            return codes.RULE_CARD_MAC_TRIES - 1, []  # unreadable: assume the worst short of locked
        return raw[0], [raw[i:i + 8] for i in range(1, len(raw), 8)]

    def _store(self, n, refused):
        self.nv.put(_MAC_KEY, bytes([n]) + b"".join(refused[-MAC_MEMORY:]))

    def tries_left(self):
        return codes.RULE_CARD_MAC_TRIES - self.load()[0]

    def refused(self, data):
        return mac_digest(data) in self.load()[1]

    def check(self, data, flags, refused_error):
        """The error that keeps `data` from the card (0: it may go): refused before, or the last try
        without FLAG_CONFIRM_MAC."""
        n, refused = self.load()
        if mac_digest(data) in refused:
            return refused_error
        if codes.RULE_CARD_MAC_TRIES - n <= 1 and not flags >> codes.FLAG_CONFIRM_MAC & 1:
            return codes.E_CARD_MAC_LAST_TRY
        return 0

    def send(self, data, transmit):
        """Hand `data` to the fiscal card with `transmit(data)`, counting as described above."""
        n, refused = self.load()
        self._store(n + 1, refused)
        try:
            transmit(data)
        except CardError as e:
            if e.sw == 0x9302 or e.sw == 0x9303:
                refused.append(mac_digest(data))
                self._store(codes.RULE_CARD_MAC_TRIES if e.sw == 0x9303 else n + 1, refused)
            elif e.code != codes.E_CARD_NO_RESPONSE:
                self._store(n, refused)  # answered without counting, or never sent
            raise
        self._store(0, refused)


class ManagementCard(Card):
    def __init__(self, slot):
        Card.__init__(self, slot, codes.E_CARD_MGMT_MISSING, DF_MANAGEMENT)

    def prove(self, challenge):
        return self.send(_CLA_ISO, _INS_INTERNAL_AUTH, 0, 0, challenge, 256)


def authenticate_inspector(fiscal, slot):
    """Prove the card in `slot` is a genuine management card through our fiscal card (docs/CARDS.md §4);
    returns its certificate dict.  A card that is not a management card: CARD_MGMT_MISSING."""
    mgmt = ManagementCard(slot)
    try:
        mgmt.open()
    except CardError as e:
        if e.code == codes.E_CARD_WRONG_TYPE or e.code == codes.E_CARD_USER_MISSING:
            raise CardError(codes.E_CARD_MGMT_MISSING)
        raise
    proof = mgmt.prove(fiscal.challenge())
    fiscal.external_authenticate(proof)
    return schema.decode(layouts.INSPECTOR_PROOF, proof)["certificate"]
