"""Simulated ISO 7816 cards of a fiscal till: fiscal (税控卡), user (用户卡) and management (税务管理卡).

    card = FiscalCard.issued(data)   # data: protocol.personalisation.FiscalCardData; or store.load_card(path)
    slot = CardSlot(card)                           # what the till's HAL uses
    atr = slot.power_on(); response = slot.transmit(apdu)

Each card is a sans-IO core (`process(apdu) -> response`, state in a dataclass); persistence
(store), slots with fault injection (slot) and PC/SC through vpcd (vpcd) are at the edge.
docs/CARDS.md describes the files, commands, status words and the APDU sequences of the lifecycle.
"""

from .faults import CardAbsentError, CardIOError, CardMuteError
from .fiscal import FiscalCard, FiscalState
from .iso import SimCard
from .management import ManagementCard, ManagementState
from .slot import CardSlot
from .store import CardFileError, load_card, save_card
from .user import UserCard, UserState

__all__ = [
    "CardAbsentError", "CardFileError", "CardIOError", "CardMuteError", "CardSlot", "FiscalCard", "FiscalState",
    "ManagementCard", "ManagementState", "SimCard", "UserCard", "UserState", "load_card", "save_card",
]
