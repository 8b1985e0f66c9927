"""The bureau's visit of a user card, as APDUs through a gateway.readers.Reader.

    s = UserCardSession(reader, keystore)
    s.open()                                 SELECT TID01, READ BINARY EF02 (card no., taxpayer)
    for recno, status, record, till in s.declarations(): ...verify...
    s.authenticate()                         GET CHALLENGE, EXTERNAL AUTHENTICATE (P2 01, K_UC_ADMIN)
    s.clear(recno, report, limits)           EF01 control data for that till, EF04 record -> CLEARED
    s.add_roll(issue_roll(...))              EF05 += one roll

Writes need `authenticate()` first (the card answers 6982 otherwise).  The user card's master-key
generation is the key store's newest unless `key_id` says otherwise (the bureau's card registry records
it).  Every refusal raises a gateway.bureau_errors exception.
"""

from __future__ import annotations

from protocol import apdu
from protocol import cardfiles

from protocol import cardauth
from . import issuance, verify
from .bureau_errors import BureauError
from .keystore import KeyStore
from .readers import Reader


class UserCardSession:
    def __init__(self, reader: Reader, keystore: KeyStore, *, key_id: int | None = None):
        self.reader = reader
        self.keystore = keystore
        self.key_id = key_id
        self.identity: dict | None = None

    @property
    def card_no(self) -> bytes:
        if self.identity is None:
            raise BureauError("open() the user card first")
        return self.identity["card_no"]

    def open(self) -> dict:
        """Select the user card application and read its identity (EF02)."""
        if self.reader.atr is None:
            self.reader.connect()
        self.reader.select(apdu.DF_USER)
        self.identity = dict(cardfiles.UserIdentity.parse(self.reader.read_binary(cardfiles.USER_EF_IDENTITY)))
        self.identity.pop("_io", None)
        return self.identity

    def authenticate(self) -> None:
        challenge = self.reader.send(apdu.CLA_ISO, apdu.INS_GET_CHALLENGE, le=apdu.CHALLENGE_LEN, what="GET CHALLENGE")
        key = cardauth.user_admin_key(self.keystore.master(self.key_id), self.card_no)
        self.reader.send(apdu.CLA_ISO, apdu.INS_EXTERNAL_AUTHENTICATE, 0, apdu.KEYREF_BUREAU,
                         cardauth.bureau_cryptogram(key, challenge, self.card_no), what="EXTERNAL AUTHENTICATE")

    def tills(self) -> list[tuple[int, str, bytes]]:
        """(record number, machine no., fiscal card no.) of every till the card serves (EF06)."""
        return [(i + 1, t.machine_no, t.card_no)
                for i, t in enumerate(cardfiles.UserTill.parse(r) for r in self.reader.read_records(cardfiles.USER_EF_TILLS))]

    def machine_of(self, fiscal_card_no: bytes) -> str:
        for _, machine, card in self.tills():
            if card == fiscal_card_no:
                return machine
        raise BureauError("the user card does not serve fiscal card %s" % fiscal_card_no.hex())

    def declarations(self) -> list[tuple[int, int, bytes]]:
        """(record number, status DECL_*, record bytes) of EF04."""
        return [(i + 1, r[0], r) for i, r in enumerate(self.reader.read_records(cardfiles.USER_EF_DECLARATIONS))]

    def verify_pending(self) -> list[tuple[int, verify.DeclarationReport]]:
        """Verify every PENDING declaration; (record number, report) for each, problems included."""
        out = []
        for recno, status, record in self.declarations():
            if status == cardfiles.DECL_SIGNED:
                machine = self.machine_of(record[1:9])
                out.append((recno, verify.verify_declaration(self.keystore, record, machine)))
        return out

    def set_declaration_status(self, recno: int, status: int) -> None:
        record = self.reader.read_records(cardfiles.USER_EF_DECLARATIONS)[recno - 1]
        self.reader.update_record(cardfiles.USER_EF_DECLARATIONS, recno, bytes([status]) + record[1:])

    def put_controls(self, record: bytes) -> int:
        """Write a UserControls record over the one of the same machine, or append it; its record number."""
        records = self.reader.read_records(cardfiles.USER_EF_CONTROLS)
        recno = next((i + 1 for i, r in enumerate(records) if r[:16] == record[:16]), len(records) + 1)
        self.reader.update_record(cardfiles.USER_EF_CONTROLS, recno, record)
        return recno

    def add_roll(self, record: bytes) -> int:
        """Append a UserRoll record (gateway.issuance.issue_roll); its record number."""
        recno = len(self.reader.read_records(cardfiles.USER_EF_ROLLS)) + 1
        self.reader.update_record(cardfiles.USER_EF_ROLLS, recno, record)
        return recno

    def clear(self, recno: int, report: verify.DeclarationReport, limits: issuance.Limits,
              seq: int | None = None) -> bytes:
        """Accept declaration `recno`: write clear-unlock control data for its till, mark it CLEARED.
        DeclarationRejected (nothing written) unless `report` verified."""
        record = issuance.issue_controls(self.keystore, report, limits=limits, seq=seq)
        self.put_controls(record)
        self.set_declaration_status(recno, cardfiles.DECL_CLEARED)
        return record
