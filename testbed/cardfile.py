"""The card-file reader backend: a simulator card file (hw_sim.cards.store JSON) as a card in the bureau's
reader, registered as `simfile` in the gateway's reader registry (pyproject.toml, entry point group
`fiscal_toolkit.card_readers`), so the bureau opens it by name and never imports the simulator.

    reader = gateway.readers.open_reader("simfile", path="state/cards/user.json")
    personalise = gateway.readers.personaliser("simfile", "state/cards")    # issue-cards --out

Rules: the card is loaded when the reader is made (a missing or damaged file is a ReaderError naming it)
and saved back after every command that changed it, as a card keeps its EEPROM; personalising writes
the issued fiscal and user card as folder/fiscal.json and folder/user.json (a SimTill state folder's
cards/).
"""

from __future__ import annotations

from pathlib import Path

from gateway.bureau_errors import ReaderError
from gateway.readers import SimReader
from hw_sim.cards import CardFileError, CardSlot, FiscalCard, UserCard, load_card, store
from protocol.personalisation import FiscalCardData, UserCardData


class CardFileReader(SimReader):
    name = "simfile"

    def __init__(self, path: str | Path) -> None:
        try:
            card = load_card(path)
        except (CardFileError, OSError) as e:
            raise ReaderError(str(e)) from None
        super().__init__(CardSlot(card, path=path, name="hall"))

    @classmethod
    def personaliser(cls, target: str | Path, *, cards_out: dict | None = None):
        """Write issued cards as card files in the folder `target`; the card objects also go into
        `cards_out` (keys "fiscal", "user") if given."""

        def personalise(fd: FiscalCardData, ud: UserCardData) -> None:
            out = Path(target)
            out.mkdir(parents=True, exist_ok=True)
            fiscal, user = FiscalCard.issued(fd), UserCard.issued(ud)
            store.save_card(fiscal, out / "fiscal.json")
            store.save_card(user, out / "user.json")
            if cards_out is not None:
                cards_out.update(fiscal=fiscal, user=user)
        return personalise
