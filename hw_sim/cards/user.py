"""The user card (用户卡, DF TID01): carries declarations to the bureau and control data and invoice rolls
back, for every till it serves (EF06).  Rules and APDU sequences: docs/CARDS.md.

- REGISTER_SIGN answers only for a fiscal card it serves, after checking its MAC1 (6A80, 9302);
- DATA_COLLECT stores a declaration of a fiscal card it serves as PENDING in EF04 (6A80 otherwise); the
  same record twice is stored once (a lost reply is simply repeated); when EF04 is full a record the
  bureau has marked CLEARED is reused, else 6985;
- DISTRIBUTE_INVOICE_NB (P1 = the till's record number in EF06) pops the first roll in EF05 for that
  till's machine and keeps a copy in EF07 for power-fail recovery; 9401 when none is left;
- the bureau writes EF01 (control data), EF03 (tax items), EF04 (declaration status) and EF05 (rolls)
  with UPDATE BINARY/RECORD after GET CHALLENGE + EXTERNAL AUTHENTICATE (P2 = KEYREF_BUREAU) with its
  K_UC_ADMIN cryptogram (6982 without; a wrong cryptogram counts as a MAC failure).  EF02, EF06 and EF07
  are written only at issuance or by the card itself;
- ERASE BINARY of EF07 (`00 0E 87 00 26 <EF07 as read>`) empties the recovery copy when it still holds
  exactly those bytes (6985 otherwise; any other file 6982): the till takes off a roll its fiscal card
  refused, so a damaged roll is never handed to the fiscal card again.  No authentication: the copy only
  serves the till's own power-fail recovery, and erasing it loses nothing the bureau sold (the roll is
  bad, or it was loaded already).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol import cardauth
from protocol import apdu as A
from protocol import cardfiles as F
from protocol import crypto

from .iso import (
    SW_BAD_DATA, SW_CONDITIONS, SW_LIMIT, SW_SECURITY, WRITE_BUREAU, CardState, FileSpec, Refuse, SimCard,
)

CONTROLS_MAX = 8
DECLARATIONS_MAX = 8
ROLLS_MAX = 16
TILLS_MAX = 8

_RECORD_FILES = {F.USER_EF_CONTROLS: "controls", F.USER_EF_DECLARATIONS: "declarations",
                 F.USER_EF_ROLLS: "rolls", F.USER_EF_TILLS: "tills"}


@dataclass(kw_only=True)
class UserState(CardState):
    """The user card's EEPROM: files as bytes (records as lists) and the keys of the tills it serves."""

    card_no: bytes
    admin_key: bytes  # K_UC_ADMIN
    till_keys: list  # [[fiscal card no., K_REG_FC, K_REG_UC]] in EF06 order
    identity: bytes  # EF02
    tax_items: bytes  # EF03
    tills: list  # EF06 records
    controls: list = field(default_factory=list)  # EF01 records
    declarations: list = field(default_factory=list)  # EF04 records
    rolls: list = field(default_factory=list)  # EF05 records
    last_roll: bytes = bytes(F.UserLastRoll.sizeof())  # EF07


class UserCard(SimCard):
    KIND = "user"
    DF_NAME = A.DF_USER
    FILES = {
        F.USER_EF_CONTROLS: FileSpec(F.USER_EF_CONTROLS, F.UserControls, CONTROLS_MAX, WRITE_BUREAU),
        F.USER_EF_IDENTITY: FileSpec(F.USER_EF_IDENTITY, F.UserIdentity),
        F.USER_EF_TAX_ITEMS: FileSpec(F.USER_EF_TAX_ITEMS, F.UserTaxItems, 0, WRITE_BUREAU),
        F.USER_EF_DECLARATIONS: FileSpec(F.USER_EF_DECLARATIONS, F.UserDeclaration, DECLARATIONS_MAX,
                                         WRITE_BUREAU),
        F.USER_EF_ROLLS: FileSpec(F.USER_EF_ROLLS, F.UserRoll, ROLLS_MAX, WRITE_BUREAU),
        F.USER_EF_TILLS: FileSpec(F.USER_EF_TILLS, F.UserTill, TILLS_MAX),
        F.USER_EF_LAST_ROLL: FileSpec(F.USER_EF_LAST_ROLL, F.UserLastRoll),
    }
    state: UserState

    @classmethod
    def issued(cls, data, *, rng=None) -> "UserCard":
        """A blank card personalised with gateway.issuance.UserCardData."""
        state = UserState(
            card_no=bytes(data.card_no), admin_key=bytes(data.admin_key),
            till_keys=[[bytes(t.fiscal_card_no), bytes(t.reg_fc), bytes(t.reg_uc)] for t in data.tills],
            identity=F.UserIdentity.build(data.identity),
            tax_items=F.UserTaxItems.build(dict(tax_items=data.tax_items)),
            tills=[F.UserTill.build(dict(machine_no=t.machine_no, card_no=t.fiscal_card_no)) for t in data.tills])
        return cls(state, rng=rng)

    def _extra_handlers(self):
        return {
            (A.CLA_GB, A.INS_REGISTER_SIGN): self._register_sign,
            (A.CLA_GB, A.INS_DATA_COLLECT): self._data_collect,
            (A.CLA_GB, A.INS_DISTRIBUTE_INVOICE_NB): self._distribute,
            (A.CLA_ISO, A.INS_EXTERNAL_AUTHENTICATE): self._external_authenticate,
            (A.CLA_ISO, A.INS_ERASE_BINARY): self._erase_last_roll,
        }

    # ---- files -----------------------------------------------------------------------------------------
    def read_file(self, fid: int) -> bytes:
        s = self.state
        return {F.USER_EF_IDENTITY: s.identity, F.USER_EF_TAX_ITEMS: s.tax_items,
                F.USER_EF_LAST_ROLL: s.last_roll}[fid]

    def read_records(self, fid: int) -> list[bytes]:
        return getattr(self.state, _RECORD_FILES[fid])

    def write_file(self, fid: int, content: bytes) -> None:
        self.state.tax_items = bytes(content)  # the only transparent file the bureau may write

    def write_records(self, fid: int, records: list[bytes]) -> None:
        setattr(self.state, _RECORD_FILES[fid], records)

    def _till_keys(self, fiscal_card_no: bytes) -> list:
        for entry in self.state.till_keys:
            if entry[0] == fiscal_card_no:
                return entry
        raise Refuse(SW_BAD_DATA)

    # ---- commands ---------------------------------------------------------------------------------------
    def _register_sign(self, cmd) -> bytes:
        self.need_p1p2(cmd)
        raw = self.need_len(cmd, A.RegisterNb.sizeof())
        random, card_no, mac1 = raw[:4], raw[4:12], raw[12:]
        _, reg_fc, reg_uc = self._till_keys(card_no)
        try:
            crypto.verify_register_mac1(reg_fc, random, card_no, mac1)
        except crypto.MacError:
            self.mac_failed()
        self.state.mac_failures = 0
        return crypto.register_mac2(reg_uc, random, card_no, mac1)

    def _data_collect(self, cmd) -> None:
        self.need_p1p2(cmd)
        raw = self.need_len(cmd, A.DataCollectData.sizeof())
        self.parse(A.DataCollectData, raw)
        self._till_keys(raw[:8])
        record = bytes([F.DECL_SIGNED]) + raw
        s = self.state
        if any(r[1:] == raw for r in s.declarations):
            return  # already stored: a repeated DATA_COLLECT after a lost reply
        records = list(s.declarations)
        if len(records) < DECLARATIONS_MAX:
            records.append(record)
        else:
            free = [i for i, r in enumerate(records) if r[0] == F.DECL_CLEARED]
            if not free:
                raise Refuse(SW_CONDITIONS)
            records[free[0]] = record
        s.declarations = records

    def _distribute(self, cmd) -> bytes:
        if cmd.p2 != 0 or not 1 <= cmd.p1 <= len(self.state.tills):
            raise Refuse(SW_BAD_DATA)
        self.need_len(cmd, 0)
        s = self.state
        machine = s.tills[cmd.p1 - 1][:16]
        for i, record in enumerate(s.rolls):
            if record[:16] == machine:
                s.rolls = s.rolls[:i] + s.rolls[i + 1:]
                s.last_roll = record
                return record[16:]
        raise Refuse(SW_LIMIT)

    def _erase_last_roll(self, cmd) -> None:
        """ERASE BINARY of EF07, compare-and-erase: the data is EF07's content as the till read it."""
        if cmd.p1 != 0x80 | (F.USER_EF_LAST_ROLL & 0x1F) or cmd.p2 != 0:
            raise Refuse(SW_SECURITY if cmd.p1 & 0x80 and cmd.p2 == 0 else SW_BAD_DATA)
        expected = self.need_len(cmd, F.UserLastRoll.sizeof())
        if expected != self.state.last_roll:
            raise Refuse(SW_CONDITIONS)
        self.state.last_roll = bytes(F.UserLastRoll.sizeof())

    def _external_authenticate(self, cmd) -> None:
        """The bureau's cryptogram (P2 = KEYREF_BUREAU) answering this card's GET CHALLENGE."""
        self.need_p1p2(cmd, 0, A.KEYREF_BUREAU)
        cryptogram = self.need_len(cmd, cardauth.CRYPTOGRAM_LEN)
        challenge = self.take_challenge()
        self.session.bureau = False
        try:
            cardauth.verify_bureau_cryptogram(self.state.admin_key, challenge, self.state.card_no, cryptogram)
        except crypto.MacError:
            self.mac_failed()
        self.state.mac_failures = 0
        self.session.bureau = True
