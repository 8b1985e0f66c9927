"""gateway.stations.cardwrite: the two-phase card write's pieces (the stations' tests cover the whole)."""
from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from gateway.bureau_errors import BureauError
from gateway.stations import cardwrite
from gateway.stations.common import CARD, IN_PROGRESS, STALE_WRITE, Refused

HERE = SimpleNamespace(name="window-1")


def _now():
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class _Card:
    def __init__(self, fail_on=None):
        self.calls, self.fail_on = [], fail_on

    def authenticate(self):
        self.calls.append("authenticate")
        if self.fail_on == "authenticate":
            raise BureauError("no answer from the card")


def test_write_authenticates_then_puts():
    card = _Card()
    cardwrite.write(card, lambda: card.calls.append("put"), "unused", "unused")
    assert card.calls == ["authenticate", "put"]


@pytest.mark.parametrize("fail_on", ["authenticate", "put"])
def test_a_card_error_is_refused_card_saying_what_failed_and_what_to_do(fail_on):
    card = _Card(fail_on)

    def put():
        raise BureauError("card pulled")
    with pytest.raises(Refused) as e:
        cardwrite.write(card, put, "roll #7 is sold but writing it to the card failed", "present the card again")
    error = "no answer from the card" if fail_on == "authenticate" else "card pulled"
    assert e.value.reason == CARD
    assert str(e.value) == "roll #7 is sold but writing it to the card failed (%s); present the card again" % error


def test_another_stations_fresh_write_is_in_progress():
    with pytest.raises(Refused) as e:
        cardwrite.refuse_if_in_progress(HERE, "window-2", _now(), "roll 1440012345 1-100 to this card")
    assert e.value.reason == IN_PROGRESS
    assert str(e.value) == "station window-2 is writing roll 1440012345 1-100 to this card right now"


def test_this_stations_write_or_a_stale_one_is_resumed():
    cardwrite.refuse_if_in_progress(HERE, "window-1", _now(), "x")
    cardwrite.refuse_if_in_progress(HERE, "window-2", _now() - STALE_WRITE - dt.timedelta(seconds=1), "x")
