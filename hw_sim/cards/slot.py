"""A card reader slot, as the till's HAL sees it (firmware/fiscal_till/hal.py: fiscal_slot, user_slot).

    present() -> bool             a card is in the slot
    power_on() -> ATR or None     None: no card, or the card gives no ATR (mute)
    transmit(apdu) -> response    data + SW1 SW2; raises CardAbsentError (ENODEV: no card, not powered,
                                  pulled out) or CardMuteError (ETIMEDOUT: no answer) - both OSError
    power_off(), reset()

Test side: insert(card), remove() -> card, and faults:
    mute(True)                      the card stops answering (power_on -> None, transmit raises)
    pull_after(n, executed=False)   the (n+1)-th transmit from now pulls the card out: before the card
                                    ran the command (nothing changed) or, executed=True, after it ran
                                    and before the reply came back (the reply is lost: the till must
                                    recover from the card's files)

With `path`, the slot saves the card's state (hw_sim.cards.store) after every command that changed it,
so a simulator restart finds the card as it was.
"""

from __future__ import annotations

import os

from . import store
from .faults import CardAbsentError, CardMuteError


class CardSlot:
    def __init__(self, card=None, *, path: str | os.PathLike | None = None, name: str = "slot"):
        self.name = name
        self.card = None
        self.path = path
        self._saved: str | None = None
        self._pull: tuple[int, bool] | None = None
        if card is not None:
            self.insert(card)

    # ---- HAL side ------------------------------------------------------------------------------------
    def present(self) -> bool:
        return self.card is not None

    def power_on(self) -> bytes | None:
        if self.card is None:
            return None
        try:
            return self.card.power_on()
        except CardMuteError:
            return None

    def reset(self) -> bytes | None:
        return self.power_on()

    def power_off(self) -> None:
        if self.card is not None:
            self.card.power_off()

    def transmit(self, apdu: bytes) -> bytes:
        card = self.card
        if card is None:
            raise CardAbsentError("%s: no card" % self.name)
        pull = self._due()
        if pull is not None and not pull:
            self.remove()
            raise CardAbsentError("%s: card pulled out" % self.name)
        response = card.transmit(apdu)
        self._persist()
        if pull:
            self.remove()
            raise CardAbsentError("%s: card pulled out before its reply" % self.name)
        return response

    # ---- test side -----------------------------------------------------------------------------------
    def insert(self, card) -> None:
        if self.card is not None:
            raise ValueError("%s already holds a card" % self.name)
        card.power_off()
        self.card = card
        self._pull = None
        self._saved = store.dumps(card) if self.path is not None else None

    def remove(self):
        card, self.card = self.card, None
        if card is not None:
            card.power_off()
        self._pull = None
        return card

    def mute(self, on: bool = True) -> None:
        if self.card is not None:
            self.card.mute = on

    def pull_after(self, n: int = 0, *, executed: bool = False) -> None:
        self._pull = (n, executed)

    def _due(self) -> bool | None:
        """None: no pull now; False/True: pull before/after the command."""
        if self._pull is None:
            return None
        n, executed = self._pull
        if n > 0:
            self._pull = (n - 1, executed)
            return None
        self._pull = None
        return executed

    def _persist(self) -> None:
        if self.path is None:
            return
        text = store.dumps(self.card)
        if text != self._saved:
            store.save_card(self.card, self.path)
            self._saved = text
