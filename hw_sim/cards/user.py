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
from protocol import apdu
from protocol import cardfiles
from protocol import crypto

from .iso import (
    SW_BAD_DATA, SW_CONDITIONS, SW_LIMIT, SW_SECURITY, WRITE_BUREAU, CardState, FileSpec, Refuse, SimCard,
)

CONTROLS_MAX = 8
DECLARATIONS_MAX = 8
ROLLS_MAX = 16
TILLS_MAX = 8

_RECORD_FILES = {cardfiles.USER_EF_CONTROLS: "controls", cardfiles.USER_EF_DECLARATIONS: "declarations",
                 cardfiles.USER_EF_ROLLS: "rolls", cardfiles.USER_EF_TILLS: "tills"}


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
    last_roll: bytes = bytes(cardfiles.UserLastRoll.sizeof())  # EF07


class UserCard(SimCard):
    KIND = "user"
    DF_NAME = apdu.DF_USER
    FILES = {
        cardfiles.USER_EF_CONTROLS: FileSpec(cardfiles.USER_EF_CONTROLS, cardfiles.UserControls, CONTROLS_MAX, WRITE_BUREAU),
        cardfiles.USER_EF_IDENTITY: FileSpec(cardfiles.USER_EF_IDENTITY, cardfiles.UserIdentity),
        cardfiles.USER_EF_TAX_ITEMS: FileSpec(cardfiles.USER_EF_TAX_ITEMS, cardfiles.UserTaxItems, 0, WRITE_BUREAU),
        cardfiles.USER_EF_DECLARATIONS: FileSpec(cardfiles.USER_EF_DECLARATIONS, cardfiles.UserDeclaration, DECLARATIONS_MAX,
                                         WRITE_BUREAU),
        cardfiles.USER_EF_ROLLS: FileSpec(cardfiles.USER_EF_ROLLS, cardfiles.UserRoll, ROLLS_MAX, WRITE_BUREAU),
        cardfiles.USER_EF_TILLS: FileSpec(cardfiles.USER_EF_TILLS, cardfiles.UserTill, TILLS_MAX),
        cardfiles.USER_EF_LAST_ROLL: FileSpec(cardfiles.USER_EF_LAST_ROLL, cardfiles.UserLastRoll),
    }
    state: UserState

    @classmethod
    def issued(cls, data, *, rng=None) -> "UserCard":
        """A blank card personalised with protocol.personalisation.UserCardData."""
        state = UserState(
            card_no=bytes(data.card_no), admin_key=bytes(data.admin_key),
            till_keys=[[bytes(t.fiscal_card_no), bytes(t.reg_fc), bytes(t.reg_uc)] for t in data.tills],
            identity=cardfiles.UserIdentity.build(data.identity),
            tax_items=cardfiles.UserTaxItems.build(dict(tax_items=data.tax_items)),
            tills=[cardfiles.UserTill.build(dict(machine_no=t.machine_no, card_no=t.fiscal_card_no)) for t in data.tills])
        return cls(state, rng=rng)

    def _extra_handlers(self):
        return {
            (apdu.CLA_GB, apdu.INS_REGISTER_SIGN): self._register_sign,
            (apdu.CLA_GB, apdu.INS_DATA_COLLECT): self._data_collect,
            (apdu.CLA_GB, apdu.INS_DISTRIBUTE_INVOICE_NB): self._distribute,
            (apdu.CLA_ISO, apdu.INS_EXTERNAL_AUTHENTICATE): self._external_authenticate,
            (apdu.CLA_ISO, apdu.INS_ERASE_BINARY): self._erase_last_roll,
        }

    # ---- files -----------------------------------------------------------------------------------------
    def read_file(self, fid: int) -> bytes:
        s = self.state
        return {cardfiles.USER_EF_IDENTITY: s.identity, cardfiles.USER_EF_TAX_ITEMS: s.tax_items,
                cardfiles.USER_EF_LAST_ROLL: s.last_roll}[fid]

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
        # R-INIT-CHECKS: only a pairing listed in EF06; R-LOCK-USER-CARD
        self.need_p1p2(cmd)
        raw = self.need_len(cmd, apdu.RegisterNb.sizeof())
        random, card_no, mac1 = raw[:4], raw[4:12], raw[12:]
        _, reg_fc, reg_uc = self._till_keys(card_no)
        try:
            crypto.verify_register_mac1(reg_fc, random, card_no, mac1)
        except crypto.MacError:
            self.mac_failed()
        self.state.mac_failures = 0
        return crypto.register_mac2(reg_uc, random, card_no, mac1)

    def _data_collect(self, cmd) -> None:
        # R-DECLARE-PERIOD, R-DECLARE-DELIVERED: the declaration lands on the user card
        self.need_p1p2(cmd)
        raw = self.need_len(cmd, apdu.DataCollectData.sizeof())
        self.parse(apdu.DataCollectData, raw)
        self._till_keys(raw[:8])
        record = bytes([cardfiles.DECL_SIGNED]) + raw
        s = self.state
        if any(r[1:] == raw for r in s.declarations):
            return  # already stored: a repeated DATA_COLLECT after a lost reply
        records = list(s.declarations)
        if len(records) < DECLARATIONS_MAX:
            records.append(record)
        else:
            free = [i for i, r in enumerate(records) if r[0] == cardfiles.DECL_CLEARED]
            if not free:
                raise Refuse(SW_CONDITIONS)
            records[free[0]] = record
        s.declarations = records

    def _distribute(self, cmd) -> bytes:
        # R-LOCK-NO-ROLL: one roll at a time, in the order sold (9401 when none is left)
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
        if cmd.p1 != 0x80 | (cardfiles.USER_EF_LAST_ROLL & 0x1F) or cmd.p2 != 0:
            raise Refuse(SW_SECURITY if cmd.p1 & 0x80 and cmd.p2 == 0 else SW_BAD_DATA)
        expected = self.need_len(cmd, cardfiles.UserLastRoll.sizeof())
        if expected != self.state.last_roll:
            raise Refuse(SW_CONDITIONS)
        self.state.last_roll = bytes(cardfiles.UserLastRoll.sizeof())

    def _external_authenticate(self, cmd) -> None:
        """The bureau's cryptogram (P2 = KEYREF_BUREAU) answering this card's GET CHALLENGE."""
        self.need_p1p2(cmd, 0, apdu.KEYREF_BUREAU)
        cryptogram = self.need_len(cmd, cardauth.CRYPTOGRAM_LEN)
        challenge = self.take_challenge()
        self.session.bureau = False
        try:
            cardauth.verify_bureau_cryptogram(self.state.admin_key, challenge, self.state.card_no, cryptogram)
        except crypto.MacError:
            self.mac_failed()
        self.state.mac_failures = 0
        self.session.bureau = True
