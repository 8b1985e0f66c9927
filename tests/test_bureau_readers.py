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


# ---- the registry: readers by name, from the fiscal_toolkit.card_readers entry points -------------------
def test_the_registry_names_every_backend_and_an_unknown_name_lists_them():
    from gateway.readers import reader_names
    assert {"sim", "pcsc", "simfile"} <= set(reader_names())
    with pytest.raises(ReaderError, match="no card reader named 'serial': the known ones are .*pcsc, sim, simfile"):
        open_reader("serial")


def test_a_card_file_opens_by_name_and_keeps_every_change(tmp_path):
    from gateway import issuance
    from gateway.readers import CARD_FILE, personaliser
    from gateway.usercard import UserCardSession
    from hw_sim.cards import load_card
    c = demo_cards()
    personaliser(CARD_FILE, tmp_path / "cards")(c.fiscal_data, c.user_data)
    path = tmp_path / "cards" / "user.json"
    assert load_card(path).state.rolls == []
    session = UserCardSession(open_reader(CARD_FILE, path=path), c.keystore)
    assert session.open()["card_no"] == c.user_data.card_no
    session.authenticate()
    record = issuance.issue_roll(c.keystore, fiscal_card_no=c.fiscal_data.card_no, machine_no=c.fiscal_data.machine_no,
                                 code="1440012345", start=1, end=100)
    session.add_roll(record)
    assert load_card(path).state.rolls == [record]


def test_a_missing_card_file_is_a_reader_error_naming_it(tmp_path):
    with pytest.raises(ReaderError, match="nothing.json"):
        open_reader("simfile", path=tmp_path / "nothing.json")


def test_a_reader_that_cannot_personalise_says_so():
    from gateway.readers import personaliser
    with pytest.raises(ReaderError, match="the sim reader cannot personalise blank cards"):
        personaliser("sim", "anywhere")
