"""The reader abstraction: simulated backend, status-word errors, faults."""

import pytest

from gateway.bureau_errors import CardStatusError, ReaderError
from gateway.readers import SimReader, open_reader
from hw_sim.cards import CardSlot
from testbed.demo_cards import demo_cards
from protocol import apdu
from protocol import cardfiles


def test_sim_reader_connects_and_selects():
    c = demo_cards()
    with open_reader("sim", card=c.fiscal) as r:
        assert r.atr == c.fiscal.atr
        r.select(apdu.DF_FISCAL)
        assert cardfiles.FiscalIdentity.parse(r.read_binary(cardfiles.FISCAL_EF_IDENTITY)).machine_no == "1234567890123456"
    assert not c.fiscal.powered


def test_a_refusal_names_the_error_table_row():
    with SimReader(demo_cards().fiscal) as r:
        with pytest.raises(CardStatusError) as e:
            r.send(apdu.CLA_GB, apdu.INS_VERIFY_FISCAL_PIN, data=bytes(8), le=8)
    assert (e.value.sw, e.value.ins, e.value.error.name) == (0x6901, 0xF9, "CARD_REGISTRATION")
    assert "6901" in str(e.value) and "0x0307" in str(e.value)


def test_no_roll_left_reads_as_its_own_error():
    with SimReader(demo_cards().user) as r:
        with pytest.raises(CardStatusError) as e:
            r.send(apdu.CLA_GB, apdu.INS_DISTRIBUTE_INVOICE_NB, 1, 0)
    assert e.value.error.name == "CARD_NO_ROLL"


def test_read_records_stops_at_the_last_record():
    with SimReader(demo_cards().user) as r:
        assert len(r.read_records(cardfiles.USER_EF_TILLS)) == 1
        assert r.read_records(cardfiles.USER_EF_ROLLS) == []


def test_faults_are_reader_errors():
    slot = CardSlot(demo_cards().fiscal)
    r = SimReader(slot)
    r.connect()
    slot.mute()
    with pytest.raises(ReaderError, match="does not answer"):
        r.send(apdu.CLA_ISO, apdu.INS_GET_CHALLENGE, le=8)
    with pytest.raises(ReaderError, match="no card or no ATR"):
        r.connect()
    with pytest.raises(ReaderError, match="no card"):
        SimReader(CardSlot()).connect()


def test_open_reader_refuses_unknown_kinds():
    with pytest.raises(ReaderError):
        open_reader("serial")
    with pytest.raises(ReaderError):
        open_reader("sim")
