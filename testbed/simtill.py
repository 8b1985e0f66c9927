"""The simulated till with the demo cards and the bureau's side of them: hw_sim.sim.SimTill composed with
testbed.demo_cards and testbed.bureau.  This is what `fiscal-sim`, the demo, the rigs and the benches run.

    with SimTill(state_dir, "micropython") as sim:       # a new folder gets the demo cards (default)
        sim.bureau()                                     # authenticated session on the user card
        sim.hall().sell_roll(1, 100)                     # the tax hall: rolls, clear-unlock

A new state folder gets the demo cards (`cards="demo"`, the default): fiscal and user card of its machine
(default the demo machine, testbed.demo_cards.MACHINE_NO) under the published TEST keys, and the demo
inspector's card kept beside the slots (`management_card`), so the till is marked non-fiscal (identity
non_fiscal=True: every printed invoice says NON-FISCAL).  `cards="none"` is a bare till with empty slots
and no bureau keys.
"""

from __future__ import annotations

import os

from gateway.keystore import KeyStore
from hw_sim import sim
from hw_sim.sim_config import SimTillError

from . import demo_cards
from .bureau import Bureau, open_session


class DemoCardSet(sim.CardSet):
    """The demo cards for any machine number, under the TEST keys, with fresh random PINs and challenges."""

    name = "demo"
    non_fiscal = True

    def issue(self, machine_no: str) -> dict:
        cards = demo_cards.demo_cards(seed=int.from_bytes(os.urandom(4), "big"), machine_no=machine_no)
        return {"fiscal": cards.fiscal, "user": cards.user, "management": cards.management}


class BlankTestCardSet(sim.CardSet):
    """Empty slots for cards a bureau under the TEST keys will issue (the narrated demo): the till is
    NON-FISCAL from its first boot, as R-NON-FISCAL asks of any till whose cards carry TEST keys."""

    name = "blank-test"
    non_fiscal = True


CARD_SETS = (DemoCardSet(), sim.NO_CARDS, BlankTestCardSet())
CARD_SET_NAMES = tuple(c.name for c in CARD_SETS)


class SimTill(sim.SimTill):
    def __init__(self, state_dir, interpreter: str = "cpython", **kw) -> None:
        super().__init__(state_dir, interpreter, card_sets=CARD_SETS, default_cards=DemoCardSet.name,
                         default_machine_no=demo_cards.MACHINE_NO, **kw)
        # the bureau's keys for the demo cards (TEST keys); None for a bare till
        self.keystore: KeyStore | None = KeyStore.for_tests() if self.card_set.non_fiscal else None
        self.management_card = self.spare_cards.get("management")

    def bureau(self):
        """An authenticated bureau session (gateway.usercard.UserCardSession) on the card in the user slot,
        as at the tax hall; needs the demo cards' key store."""
        return open_session(self.user_slot, self._keys())

    def hall(self) -> Bureau:
        """The tax hall for this till's user card: sell rolls, clear-unlock (testbed.bureau.Bureau)."""
        return Bureau(self.user_slot, self._keys(), machine_no=self.identity["machine_no"])

    def _keys(self) -> KeyStore:
        if self.keystore is None:
            raise SimTillError("this till has no demo cards: the bureau has no keys for its user card")
        return self.keystore
