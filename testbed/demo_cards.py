"""A ready-made set of cards under the published TEST keys (NON-FISCAL), for the simulator, tests, benches.

    cards = demo_cards()          # fiscal + user card of the demo till, an inspector's card
    cards.fiscal, cards.user, cards.management, cards.keystore, cards.fiscal_data ...

Numbers are those of the crypto golden vectors (docs/CRYPTO.md §6): machine 1234567890123456, fiscal
card 3201000000000001, user card 3201100000000001.  `seed` makes the cards' random numbers (PINs,
challenges) reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from gateway import issuance
from gateway.keystore import KeyStore

from .fiscal import FiscalCard
from .management import ManagementCard
from .user import UserCard

MACHINE_NO = "1234567890123456"
FISCAL_CARD_NO = bytes.fromhex("3201000000000001")
USER_CARD_NO = bytes.fromhex("3201100000000001")
MANAGEMENT_CARD_NO = bytes.fromhex("3201900000000001")
TAXPAYER = issuance.Taxpayer(taxpayer_no="91440101MA5CXXXX1X", taxpayer_id="440101000000001",
                      name="广州市示例餐饮有限公司 (TEST)", bureau_code="144010000000")
TAX_ITEMS = [issuance.tax_item(1, 300, "10101", "餐饮服务"), issuance.tax_item(2, 500, "10201", "住宿服务")]
LIMITS = issuance.Limits(deadline=20260131, single_limit=1_000_000, cumulative_limit=50_000_000, return_limit=2_000_000)
VALID_FROM, VALID_TO = 20260101, 20301231
INSPECTOR_PIN = "123456"


def seeded_rng(seed: int):
    r = random.Random(seed)
    return lambda n: bytes(r.getrandbits(8) for _ in range(n))


@dataclass
class DemoCards:
    keystore: KeyStore
    fiscal_data: issuance.FiscalCardData
    user_data: issuance.UserCardData
    management_data: issuance.ManagementCardData
    fiscal: FiscalCard
    user: UserCard
    management: ManagementCard


def demo_cards(seed: int = 1, *, keystore: KeyStore | None = None, limits: issuance.Limits = LIMITS,
               valid_from: int = VALID_FROM, valid_to: int = VALID_TO,
               management_pin: str | None = INSPECTOR_PIN) -> DemoCards:
    ks = keystore or KeyStore.for_tests()
    fd, ud = issuance.issue_cards(ks, taxpayer=TAXPAYER, machine_no=MACHINE_NO, fiscal_card_no=FISCAL_CARD_NO,
                           user_card_no=USER_CARD_NO, valid_from=valid_from, valid_to=valid_to, limits=limits,
                           tax_items=TAX_ITEMS)
    md = issuance.issue_management_card(ks, card_no=MANAGEMENT_CARD_NO, inspector_no="440100000123",
                                 bureau_code=TAXPAYER.bureau_code, valid_from=valid_from, valid_to=20281231,
                                 pin=management_pin)
    rng = seeded_rng(seed)
    return DemoCards(ks, fd, ud, md, FiscalCard.issued(fd, rng=rng), UserCard.issued(ud, rng=rng),
                     ManagementCard.issued(md, rng=rng))


class CardRig:
    """The demo cards in slots, powered, with the till-side steps as methods (tests, benches, demos).

    rig = CardRig().register().load_roll()      # registered, PIN verified, roll 1440012345 no. 1-100
    code = rig.issue(20260105, [(1, 1000)])     # the next number of the roll
    """

    ROLL_CODE = "1440012345"

    def __init__(self, seed: int = 1, **kw):
        from .slot import CardSlot
        self.cards = demo_cards(seed, **kw)
        self.keystore = self.cards.keystore
        self.fiscal = CardSlot(self.cards.fiscal, name="fiscal")
        self.user = CardSlot(self.cards.user, name="user")
        self.management = CardSlot(self.cards.management, name="management")
        for slot in (self.fiscal, self.user, self.management):
            slot.power_on()
        self.pin: bytes | None = None

    def register(self) -> "CardRig":
        from . import sequences
        self.pin = sequences.initialize(self.fiscal, self.user)
        self.pin = sequences.verify_pin(self.fiscal, self.pin)
        return self

    def bureau(self):
        """A bureau session on the user card (authenticated); the card is powered again afterwards."""
        from gateway.readers import SimReader
        from gateway.usercard import UserCardSession
        session = UserCardSession(SimReader(self.user), self.keystore)
        session.open()
        session.authenticate()
        return session

    def sell_roll(self, start: int = 1, end: int = 100, code: str | None = None) -> bytes:
        record = issuance.issue_roll(self.keystore, fiscal_card_no=FISCAL_CARD_NO, machine_no=MACHINE_NO,
                              code=code or self.ROLL_CODE, start=start, end=end)
        self.bureau().add_roll(record)
        return record

    def load_roll(self, start: int = 1, end: int = 100, code: str | None = None) -> "CardRig":
        from . import sequences
        self.sell_roll(start, end, code)
        sequences.load_roll(self.fiscal, self.user, 1)
        return self

    def issue(self, date: int, lines: list[tuple[int, int]], kind: int = 1, number: int | None = None) -> bytes:
        from . import sequences
        if number is None:
            number = self.cards.fiscal.state.roll["next"]
        total = sum(a for _, a in lines)
        return sequences.issue(self.fiscal, date, kind, number, lines, total)
