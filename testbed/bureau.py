"""The tax hall's side of a simulated till's user card, in-process: the gateway library through a
reader on the card's slot (gateway.readers.SimReader), under the bureau's key store.

    hall = Bureau(sim.user_slot, keystore)          # any slot or card: power_on / transmit / power_off
    hall.sell_roll(1, 100)                          # UserRoll for the till's fiscal card onto EF05
    report = hall.clear(20260228)                   # verify the pending declaration, write clear-unlock
    s = hall.session()                              # an authenticated gateway.usercard.UserCardSession

Rules: every visit opens a new authenticated session (SELECT, READ identity, GET CHALLENGE, EXTERNAL
AUTHENTICATE), as a card put into the hall's reader is; a roll is MAC'd for `fiscal_card_no` and bound to
`machine_no` (the demo till's unless told otherwise); clear() expects exactly one pending declaration and
writes control data with the demo limits unless others are given.
"""

from __future__ import annotations

from gateway import issuance
from gateway.keystore import KeyStore
from gateway.readers import SimReader
from gateway.usercard import UserCardSession
from gateway.verify import DeclarationReport

from . import demo_cards


def open_session(slot, keystore: KeyStore, *, key_id: int | None = None) -> UserCardSession:
    """An authenticated bureau session on the card in `slot`."""
    session = UserCardSession(SimReader(slot), keystore, key_id=key_id)
    session.open()
    session.authenticate()
    return session


class Bureau:
    def __init__(self, user_slot, keystore: KeyStore, *, machine_no: str = demo_cards.MACHINE_NO,
                 fiscal_card_no: bytes = demo_cards.FISCAL_CARD_NO) -> None:
        self.user_slot = user_slot
        self.keystore = keystore
        self.machine_no = machine_no
        self.fiscal_card_no = fiscal_card_no

    def session(self) -> UserCardSession:
        return open_session(self.user_slot, self.keystore)

    def sell_roll(self, start: int = 1, end: int = 100, code: str = demo_cards.ROLL_CODE) -> bytes:
        """Issue a roll for the till and write it onto the user card; the UserRoll record."""
        record = issuance.issue_roll(self.keystore, fiscal_card_no=self.fiscal_card_no, machine_no=self.machine_no,
                                     code=code, start=start, end=end)
        self.session().add_roll(record)
        return record

    def clear(self, deadline: int, *, single_limit: int = demo_cards.LIMITS.single_limit,
              cumulative_limit: int = demo_cards.LIMITS.cumulative_limit,
              return_limit: int = demo_cards.LIMITS.return_limit) -> DeclarationReport:
        """Verify the one pending declaration and write clear-unlock data (new deadline and limits);
        the declaration's verification report."""
        s = self.session()
        ((recno, report),) = s.verify_pending()
        s.clear(recno, report, issuance.Limits(deadline=deadline, single_limit=single_limit,
                                               cumulative_limit=cumulative_limit, return_limit=return_limit))
        return report
