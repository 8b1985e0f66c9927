"""ISO 7816 behaviour shared by the simulated cards: ATR, dispatch, files, challenge, T=0, faults, slots, store."""

import errno
import os
import stat

import pytest

from hw_sim.cards import CardAbsentError, CardFileError, CardMuteError, CardSlot, load_card, save_card, store
from testbed.demo_cards import CardRig, demo_cards
from hw_sim.cards.iso import make_atr
from protocol import cardfiles
from protocol import errors


def sw(resp: bytes) -> int:
    return resp[-2] << 8 | resp[-1]


@pytest.fixture
def cards():
    c = demo_cards()
    for card in (c.fiscal, c.user, c.management):
        card.power_on()
    return c


def test_atr_announces_t1_and_names_the_card_type(cards):
    assert cards.fiscal.atr == bytes.fromhex("3b890146544b5453414d3031db")  # 3B 89 01 "FTKTSAM01" TCK
    assert cards.user.atr == bytes.fromhex("3b880146544b544944303188")
    assert cards.management.atr[3:] == b"FTKCHECK01" + cards.management.atr[-1:]
    for atr in (cards.fiscal.atr, cards.user.atr, cards.management.atr):
        tck = 0
        for b in atr[1:]:
            tck ^= b
        assert tck == 0  # TCK makes the XOR of T0..TCK zero


def test_atr_refuses_more_than_15_historical_bytes():
    with pytest.raises(ValueError):
        make_atr(bytes(16))


@pytest.mark.parametrize("apdu,expected", [
    ("00a404", 0x6700),  # shorter than its header
    ("80a4040006", 0x6E00),  # CLA 80: not ISO, not GB
    ("00ff0000", 0x6D00),  # no such INS
    ("00f0000010", 0x6D00),  # a GB INS under the ISO class
    ("c0a40400", 0x6D00),  # an ISO INS under the GB class
    ("c0f90000080102", 0x6700),  # Lc 8, 2 bytes
    ("c0f9000000", 0x6700),  # short APDU with Lc 0
])
def test_dispatch_status_words(cards, apdu, expected):
    assert cards.fiscal.process(bytes.fromhex(apdu)) == expected.to_bytes(2, "big")


@pytest.mark.parametrize("card,name", [("fiscal", b"TSAM01"), ("user", b"TID01"), ("management", b"CHECK01")])
def test_select_by_df_name_confirms_the_card_type(cards, card, name):
    c = getattr(cards, card)
    assert c.process(b"\x00\xa4\x04\x00" + bytes([len(name)]) + name) == b"\x90\x00"
    other = b"TSAM01" if name != b"TSAM01" else b"TID01"
    assert c.process(b"\x00\xa4\x04\x00" + bytes([len(other)]) + other) == b"\x6a\x82"


def test_select_ef_by_file_id_then_read_binary_with_offset(cards):
    f = cards.fiscal
    assert f.process(bytes.fromhex("00a4020c02ef02")) == b"\x90\x00"
    whole = f.process(bytes.fromhex("00b0000000"))
    assert sw(whole) == 0x9000 and len(whole) - 2 == cardfiles.FiscalIdentity.sizeof()
    assert whole[:8] == bytes.fromhex("3201000000000001")  # card no. first
    assert f.process(bytes.fromhex("00b0000808"))[:-2] == b"12345678"  # offset 8, 8 bytes of the machine no.


def test_select_unknown_ef_is_6a82_and_bad_p1_6a80(cards):
    assert cards.fiscal.process(bytes.fromhex("00a4020c02ef09")) == b"\x6a\x82"
    assert cards.fiscal.process(bytes.fromhex("00a4080c02ef01")) == b"\x6a\x80"
    assert cards.fiscal.process(bytes.fromhex("00a4020c01ef")) == b"\x67\x00"


def test_read_binary_by_sfi_selects_the_file(cards):
    f = cards.fiscal
    r = f.process(bytes.fromhex("00b0850000"))  # SFI 5: EF05 the roll
    assert sw(r) == 0x9000 and cardfiles.FiscalRoll.parse(r[:-2]).code == ""
    assert f.session.ef == cardfiles.FISCAL_EF_ROLL


def test_read_binary_without_current_ef_or_on_a_record_file_is_6985(cards):
    assert cards.fiscal.process(bytes.fromhex("00b0000000")) == b"\x69\x85"
    assert cards.user.process(bytes.fromhex("00b0860000")) == b"\x69\x85"  # EF06 is a record file


def test_read_binary_offset_beyond_the_file_is_6a80(cards):
    assert cards.fiscal.process(bytes.fromhex("00b085ff00")) == b"\x6a\x80"


def test_update_binary_on_the_fiscal_card_is_never_allowed(cards):
    assert cards.fiscal.process(bytes.fromhex("00d6810001ff")) == b"\x69\x82"


def test_read_record_numbers_from_one(cards):
    u = cards.user
    r = u.process(bytes.fromhex("00b2013400"))  # record 1 of SFI 6 (EF06)
    till = cardfiles.UserTill.parse(r[:-2])
    assert sw(r) == 0x9000 and till.machine_no == "1234567890123456"
    assert u.process(bytes.fromhex("00b2023400")) == b"\x6a\x82"  # no record 2
    assert u.process(bytes.fromhex("00b2003400")) == b"\x6a\x80"  # record 0
    assert u.process(bytes.fromhex("00b2013000")) == b"\x6a\x80"  # P2 not "record number in P1"


def test_get_challenge_gives_8_fresh_bytes(cards):
    a = cards.fiscal.process(bytes.fromhex("0084000008"))
    b = cards.fiscal.process(bytes.fromhex("0084000008"))
    assert sw(a) == sw(b) == 0x9000 and len(a) == len(b) == 10 and a != b
    assert cards.fiscal.process(bytes.fromhex("0084000010")) == b"\x67\x00"
    assert cards.fiscal.process(bytes.fromhex("00840000")) == b"\x67\x00"


def test_get_response_without_pending_data_is_6985(cards):
    assert cards.fiscal.process(bytes.fromhex("00c0000000")) == b"\x69\x85"


def test_t0_mode_holds_response_data_for_get_response(cards):
    f = cards.fiscal
    f.t0 = True
    assert f.process(bytes.fromhex("00b0850016")) == b"\x61\x16"  # 22 bytes waiting
    part = f.process(bytes.fromhex("00c0000010"))
    assert part[-2:] == b"\x61\x06" and len(part) == 18
    rest = f.process(bytes.fromhex("00c0000000"))
    assert rest[-2:] == b"\x90\x00" and cardfiles.FiscalRoll.parse(part[:-2] + rest[:-2]).code == ""
    assert f.process(bytes.fromhex("00c0000000")) == b"\x69\x85"


def test_every_status_word_a_card_uses_is_in_the_error_table():
    from hw_sim.cards import iso
    words = [v for k, v in vars(iso).items() if k.startswith("SW_") and k not in ("SW_OK", "SW_NO_DIAGNOSIS")]
    words.append(iso.sw_pin_wrong(2))
    for w in words:
        assert errors.from_card_sw(w).name != "CARD_UNEXPECTED_SW", hex(w)


def test_locked_card_answers_9303_but_can_still_be_read(cards):
    f = cards.fiscal
    f.state.locked = True
    assert f.process(bytes.fromhex("c0f0000010")) == b"\x93\x03"
    assert f.process(bytes.fromhex("0084000008")) == b"\x93\x03"
    assert sw(f.process(bytes.fromhex("00b0820000"))) == 0x9000
    assert f.process(bytes.fromhex("00a40400065453414d3031")) == b"\x90\x00"


# ---- physical layer and faults ---------------------------------------------------------------------------
def test_unpowered_card_raises_card_absent_with_enodev():
    c = demo_cards().fiscal
    with pytest.raises(CardAbsentError) as e:
        c.transmit(bytes.fromhex("0084000008"))
    assert e.value.errno == errno.ENODEV and isinstance(e.value, OSError)


def test_mute_card_raises_card_mute_with_etimedout(cards):
    cards.fiscal.mute = True
    with pytest.raises(CardMuteError) as e:
        cards.fiscal.transmit(bytes.fromhex("0084000008"))
    assert e.value.errno == errno.ETIMEDOUT


def test_power_off_clears_the_session(cards):
    f = cards.fiscal
    f.process(bytes.fromhex("0084000008"))
    assert f.session.challenge is not None
    f.power_off()
    f.power_on()
    assert f.session.challenge is None


def test_slot_reports_presence_and_atr():
    slot = CardSlot(name="user")
    assert not slot.present() and slot.power_on() is None
    with pytest.raises(CardAbsentError):
        slot.transmit(bytes.fromhex("0084000008"))
    card = demo_cards().user
    slot.insert(card)
    assert slot.present() and slot.power_on() == card.atr
    with pytest.raises(ValueError):
        slot.insert(card)
    assert slot.remove() is card and not slot.present()


def test_slot_mute_card_gives_no_atr_and_no_answer():
    slot = CardSlot(demo_cards().fiscal)
    slot.mute()
    assert slot.power_on() is None
    with pytest.raises(CardMuteError):
        slot.transmit(bytes.fromhex("0084000008"))
    slot.mute(False)
    assert slot.power_on() is not None


def test_pull_before_the_command_changes_nothing():
    rig = CardRig()
    rig.fiscal.pull_after(0)
    before = rig.cards.fiscal.snapshot()[0]
    with pytest.raises(CardAbsentError):
        rig.fiscal.transmit(bytes.fromhex("c0f0000010"))
    assert not rig.fiscal.present() and rig.cards.fiscal.snapshot()[0] == before


def test_pull_after_the_command_loses_the_reply_but_keeps_its_effect():
    rig = CardRig().register().load_roll()
    rig.fiscal.pull_after(1, executed=True)
    rig.issue(20260105, [(1, 100)])  # the first command goes through
    with pytest.raises(CardAbsentError):
        rig.issue(20260105, [(1, 200)])
    assert rig.cards.fiscal.state.today["normal_count"] == 2 and not rig.fiscal.present()
    rig.fiscal.insert(rig.cards.fiscal)
    rig.fiscal.power_on()
    today = cardfiles.FiscalToday.parse(rig.fiscal.transmit(bytes.fromhex("00b0830000"))[:-2])
    assert today.last_number == 2  # the till recovers the lost 税控码 from EF03
    assert today.last_fiscal_code == rig.cards.fiscal.state.today["last_fiscal_code"]


# ---- persistence -------------------------------------------------------------------------------------------
def test_state_survives_save_and_load(tmp_path):
    rig = CardRig().register().load_roll()
    rig.issue(20260105, [(1, 100), (2, 50)])
    path = tmp_path / "fiscal.json"
    save_card(rig.cards.fiscal, path)
    again = load_card(path)
    assert again.snapshot()[0] == rig.cards.fiscal.snapshot()[0]
    assert not again.powered
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # it holds the card's keys


def test_slot_with_a_path_saves_after_each_changing_command(tmp_path):
    c = demo_cards()
    path = tmp_path / "user.json"
    slot = CardSlot(c.user, path=path)
    slot.power_on()
    slot.transmit(bytes.fromhex("00b2013400"))  # a read changes nothing: no file yet
    assert not path.exists()
    slot.transmit(bytes.fromhex("0084000008"))  # RAM only
    assert not path.exists()
    slot.transmit(bytes.fromhex("c0e4000010") + bytes(4) + bytes.fromhex("3201000000000001") + bytes(4))
    # ... a wrong MAC1 is counted in EEPROM
    assert load_card(path).state.mac_failures == 1


@pytest.mark.parametrize("text", ["not json", '{"format": "other"}',
                                  '{"format": "ftk-card", "version": 1, "kind": "fiscal", "state": {}}'])
def test_store_refuses_foreign_or_damaged_files(text):
    with pytest.raises(CardFileError):
        store.loads(text)


def test_vpcd_messages_map_to_power_atr_and_apdus():
    from hw_sim.cards import vpcd
    c = demo_cards().fiscal
    assert vpcd.answer(c, b"\x01") is None and c.powered  # power on: no reply
    assert vpcd.answer(c, b"\x04") == c.atr
    assert vpcd.answer(c, bytes.fromhex("0084000008"))[-2:] == b"\x90\x00"
    assert vpcd.answer(c, b"\x00") is None and not c.powered
    assert vpcd.answer(c, bytes.fromhex("0084000008")) == vpcd.DROP  # unpowered: no answer possible
    c.mute = True
    assert vpcd.answer(c, b"\x04") == vpcd.DROP
    assert vpcd.frame(b"\x01\x02") == b"\x00\x02\x01\x02"
