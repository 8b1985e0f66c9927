"""A card slot whose card lives in a file of the simulator's state folder (cards/fiscal.json, user.json),
as a card keeps its EEPROM, so a simulator restart finds it as it was.

    slot = PersistentSlot(CardSlot(name="fiscal"), state / "cards" / "fiscal.json")
    slot.load()                     # insert the file's card, if there is one
"""

from __future__ import annotations

from pathlib import Path

from protocol.fileio import write_atomic

from .cards import store
from .cards.slot import CardSlot
from .sim_config import SimTillError


class PersistentSlot:
    """A card slot (hw_sim.cards.slot.CardSlot) whose card lives in a file of the state folder, as a card
    keeps its EEPROM: the file is rewritten (temporary file, rename) after every command that changed the
    card, so a simulator restart finds it as it was.  Both the firmware's HAL and the control side use
    this object.

    Cheap on purpose (it runs for every APDU of a till-year): commands that only read (ISO SELECT, READ
    BINARY, READ RECORD, GET RESPONSE) are not followed by a save; any other is, if the card's state text
    (hw_sim.cards.store.dumps) differs from the last one written.  `fsync` adds file and folder syncs
    (durable against a host crash, slower).  insert() writes the card's file, remove() deletes it; a card
    pulled out by a fault (CardSlot.pull_after) keeps its file and is `pulled`: the card in the tester's
    hand, ready to go back in with insert(slot.pulled)."""

    READ_ONLY_INS = (0xA4, 0xB0, 0xB2, 0xC0)

    def __init__(self, slot: CardSlot, path: Path, *, fsync: bool = False) -> None:
        self.slot = slot
        self.path = path
        self.fsync = fsync
        self.pulled = None  # the card a fault pulled out last
        self._saved: str | None = None

    def __getattr__(self, name: str):  # mute, pull_after, card, name ... of the CardSlot
        return getattr(self.slot, name)

    # HAL side
    def present(self) -> bool:
        return self.slot.present()

    def power_on(self) -> bytes | None:
        return self.slot.power_on()

    reset = power_on

    def power_off(self) -> None:
        self.slot.power_off()

    def transmit(self, apdu: bytes) -> bytes:
        card = self.slot.card
        try:
            return self.slot.transmit(apdu)
        finally:
            if card is not None:
                if self.slot.card is None:
                    self.pulled = card
                if not (len(apdu) > 1 and apdu[0] == 0 and apdu[1] in self.READ_ONLY_INS):
                    self._save(card)

    # control side
    def insert(self, card) -> None:
        self.slot.insert(card)
        if card is self.pulled:
            self.pulled = None
        self._saved = None
        self._save(card)

    def remove(self):
        card = self.slot.remove()
        self.path.unlink(missing_ok=True)
        self._saved = None
        return card

    def load(self) -> None:
        """Insert the card of the slot's file, if there is one (simulator start)."""
        if self.path.exists():
            try:
                card = store.load_card(self.path)
            except store.CardFileError as e:
                raise SimTillError("%s: %s; move it away to leave that slot empty" % (self.path, e)) from None
            self.slot.insert(card)
            self._saved = store.dumps(card)

    def _save(self, card) -> None:
        text = store.dumps(card)
        if text == self._saved:
            return
        if self.fsync:
            store.save_card(card, self.path)
        else:
            write_atomic(self.path, text.encode("utf-8"), durable=False)  # card keys: owner only (0o600)
        self._saved = text
