"""The demo card set under the published TEST keys (NON-FISCAL), once, for the simulator, tests, benches,
the demo and the conformance suite's simulated devices.

    cards = demo_cards()          # fiscal + user card of the demo till, an inspector's card
    cards.fiscal, cards.user, cards.management, cards.keystore, cards.fiscal_data ...
    profile()                     # the conformance suite's Profile of a till holding these cards

Numbers are those of the crypto golden vectors (docs/CRYPTO.md §6): machine 1234567890123456, fiscal
card 3201000000000001, user card 3201100000000001; the first roll sold is ROLL_CODE.  `seed` makes the
cards' random numbers (PINs, challenges) reproducible.  The bureau's side of these cards (a session, a
roll sold, clear-unlock) is testbed.bureau.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from gateway import issuance
from gateway.keystore import KeyStore
from testbed import sequences
from hw_sim.cards.fiscal import FiscalCard
from hw_sim.cards.management import ManagementCard
from hw_sim.cards.slot import CardSlot
from hw_sim.cards.user import UserCard
from protocol.personalisation import FiscalCardData, ManagementCardData, UserCardData

MACHINE_NO = "1234567890123456"
MODEL = "FTK-1 SIM"
FISCAL_CARD_NO = bytes.fromhex("3201000000000001")
USER_CARD_NO = bytes.fromhex("3201100000000001")
MANAGEMENT_CARD_NO = bytes.fromhex("3201900000000001")
TAXPAYER = issuance.Taxpayer(taxpayer_no="91440101MA5CXXXX1X", taxpayer_id="440101000000001",
                             name="广州市示例餐饮有限公司 (TEST)", bureau_code="144010000000")
TAX_ITEMS = [issuance.tax_item(1, 300, "10101", "餐饮服务"), issuance.tax_item(2, 500, "10201", "住宿服务")]
LIMITS = issuance.Limits(deadline=20260131, single_limit=1_000_000, cumulative_limit=50_000_000,
                         return_limit=2_000_000)
VALID_FROM, VALID_TO = 20260101, 20301231
INSPECTOR_NO = "440100000123"
INSPECTOR_VALID_TO = 20281231
INSPECTOR_PIN = "123456"
ROLL_CODE = "1440012345"  # the invoice code of every roll the demo bureau sells


def seeded_rng(seed: int):
    r = random.Random(seed)
    return lambda n: bytes(r.getrandbits(8) for _ in range(n))


@dataclass
class DemoCards:
    keystore: KeyStore
    fiscal_data: FiscalCardData
    user_data: UserCardData
    management_data: ManagementCardData
    fiscal: FiscalCard
    user: UserCard
    management: ManagementCard


def demo_cards(seed: int = 1, *, machine_no: str = MACHINE_NO, keystore: KeyStore | None = None,
               limits: issuance.Limits = LIMITS, valid_from: int = VALID_FROM, valid_to: int = VALID_TO,
               management_pin: str | None = INSPECTOR_PIN) -> DemoCards:
    """The demo taxpayer's fiscal and user card for till `machine_no` and the demo inspector's card."""
    ks = keystore or KeyStore.for_tests()
    fd, ud = issuance.issue_cards(ks, taxpayer=TAXPAYER, machine_no=machine_no, fiscal_card_no=FISCAL_CARD_NO,
                                  user_card_no=USER_CARD_NO, valid_from=valid_from, valid_to=valid_to,
                                  limits=limits, tax_items=TAX_ITEMS)
    md = issuance.issue_management_card(ks, card_no=MANAGEMENT_CARD_NO, inspector_no=INSPECTOR_NO,
                                        bureau_code=TAXPAYER.bureau_code, valid_from=valid_from,
                                        valid_to=INSPECTOR_VALID_TO, pin=management_pin)
    rng = seeded_rng(seed)
    return DemoCards(ks, fd, ud, md, FiscalCard.issued(fd, rng=rng), UserCard.issued(ud, rng=rng),
                     ManagementCard.issued(md, rng=rng))


def profile(**overrides):
    """The conformance suite's Profile (conformance.dut.Profile) of a till holding the demo cards."""
    from conformance.dut import Profile
    fields = dict(machine_no=MACHINE_NO, fiscal_card_no=FISCAL_CARD_NO, taxpayer_no=TAXPAYER.taxpayer_no,
                  deadline=LIMITS.deadline, single_limit=LIMITS.single_limit,
                  cumulative_limit=LIMITS.cumulative_limit, return_limit=LIMITS.return_limit,
                  tax_items=tuple(t["index"] for t in TAX_ITEMS), card_valid_from=VALID_FROM,
                  card_valid_to=VALID_TO, non_fiscal=True, roll_code=ROLL_CODE)
    fields.update(overrides)
    return Profile(**fields)


class CardRig:
    """The demo cards in slots, powered, with the till-side steps as methods (tests, benches, demos).

    rig = CardRig().register().load_roll()      # registered, PIN verified, roll ROLL_CODE no. 1-100
    code = rig.issue(20260105, [(1, 1000)])     # the next number of the roll
    """

    ROLL_CODE = ROLL_CODE

    def __init__(self, seed: int = 1, **kw):
        from .bureau import Bureau
        self.cards = demo_cards(seed, **kw)
        self.keystore = self.cards.keystore
        self.fiscal = CardSlot(self.cards.fiscal, name="fiscal")
        self.user = CardSlot(self.cards.user, name="user")
        self.management = CardSlot(self.cards.management, name="management")
        for slot in (self.fiscal, self.user, self.management):
            slot.power_on()
        self.hall = Bureau(self.user, self.keystore, machine_no=self.cards.fiscal_data.machine_no)
        self.pin: bytes | None = None

    def register(self) -> "CardRig":
        self.pin = sequences.initialize(self.fiscal, self.user)
        self.pin = sequences.verify_pin(self.fiscal, self.pin)
        return self

    def bureau(self):
        """A bureau session on the user card (authenticated); the card is powered again afterwards."""
        return self.hall.session()

    def sell_roll(self, start: int = 1, end: int = 100, code: str | None = None) -> bytes:
        return self.hall.sell_roll(start, end, code or ROLL_CODE)

    def load_roll(self, start: int = 1, end: int = 100, code: str | None = None) -> "CardRig":
        self.sell_roll(start, end, code)
        sequences.load_roll(self.fiscal, self.user, 1)
        return self

    def issue(self, date: int, lines: list[tuple[int, int]], kind: int = 1, number: int | None = None) -> bytes:
        if number is None:
            number = self.cards.fiscal.state.roll["next"]
        total = sum(a for _, a in lines)
        return sequences.issue(self.fiscal, date, kind, number, lines, total)
