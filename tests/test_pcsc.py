"""The simulated cards through the real PC/SC stack: pcscd + vsmartcard's vpcd driver + pyscard.

The fiscal card is served on vpcd's first reader (TCP 35963) and the user card on its second (35964) by
hw_sim.cards.vpcd; the bureau library and the till-side sequences reach them only through pyscard.
Needs pyscard, pcscd and vsmartcard-vpcd (.ci/run installs them); without them the tests skip and say
which one is missing.  If no pcscd is running the fixture starts one and stops it afterwards.
"""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from gateway.readers import PcscReader, pcsc_readers
from gateway.usercard import UserCardSession
from testbed import sequences
from testbed.demo_cards import MACHINE_NO, CardRig
from hw_sim.cards.vpcd import VpcdCard
from gateway import issuance
from gateway.bureau_errors import ReaderError
from protocol import apdu
from protocol import cardfiles

VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
READER_0, READER_1 = "Virtual PCD 00 00", "Virtual PCD 00 01"


def _virtual_readers() -> list[str]:
    try:
        return [r for r in pcsc_readers() if r.startswith("Virtual PCD")]
    except ReaderError:
        return []


@pytest.fixture(scope="module")
def pcscd():
    pytest.importorskip("smartcard", reason="pyscard is not installed (needs libpcsclite-dev and swig to build)")
    if _virtual_readers():
        yield None  # a pcscd with vpcd is already running
        return
    exe = shutil.which("pcscd") or ("/usr/sbin/pcscd" if os.path.exists("/usr/sbin/pcscd") else None)
    if exe is None:
        pytest.skip("pcscd is not installed (Debian package pcscd)")
    if not VPCD_DRIVER.exists():
        pytest.skip("vpcd driver %s missing (Debian package vsmartcard-vpcd)" % VPCD_DRIVER)
    proc = subprocess.Popen([exe, "--foreground"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while not _virtual_readers():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out = proc.communicate()[0].decode(errors="replace")[-400:]
            pytest.skip("could not start pcscd with vpcd readers (exit %s): %s" % (proc.returncode, out))
        time.sleep(0.1)
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()


def _connect(name: str) -> PcscReader:
    """pcscd polls its readers: wait until it has seen the card."""
    deadline = time.monotonic() + 10
    while True:
        reader = PcscReader(name)
        try:
            reader.connect()
            return reader
        except ReaderError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def served(pcscd):
    rig = CardRig(seed=11)
    fiscal_link = VpcdCard(rig.cards.fiscal, port=35963)
    user_link = VpcdCard(rig.cards.user, port=35964)
    fiscal_link.connect()
    user_link.connect()
    fiscal, user = _connect(READER_0), _connect(READER_1)
    yield rig, fiscal, user
    for r in (fiscal, user):
        r.disconnect()
    fiscal_link.close()
    user_link.close()
    assert fiscal_link.error is None and user_link.error is None


def test_pcsc_sees_our_atrs(served):
    rig, fiscal, user = served
    assert fiscal.atr == rig.cards.fiscal.atr and user.atr == rig.cards.user.atr


def test_registration_and_roll_loading_through_pcsc(served):
    rig, fiscal, user = served
    pin = sequences.verify_pin(fiscal, sequences.initialize(fiscal, user))
    assert rig.cards.fiscal.state.registered and rig.cards.fiscal.state.pin == pin
    session = UserCardSession(user, rig.keystore)  # the bureau, through the same PC/SC reader
    assert session.open()["card_no"] == rig.cards.user_data.card_no
    session.authenticate()
    session.add_roll(issuance.issue_roll(rig.keystore, fiscal_card_no=rig.cards.fiscal_data.card_no, machine_no=MACHINE_NO,
                                  code="1440012345", start=1, end=10))
    roll = apdu.RollData.parse(sequences.load_roll(fiscal, user, 1))
    assert (roll.start, roll.end) == (1, 10)
    code = sequences.issue(fiscal, 20260105, 1, 1, [(1, 500)], 500)
    assert cardfiles.FiscalToday.parse(sequences.read_binary(fiscal, cardfiles.FISCAL_EF_TODAY)).last_fiscal_code == code


def test_status_words_cross_pcsc_unchanged(served):
    _, fiscal, _ = served
    with pytest.raises(sequences.CardRefused) as e:
        sequences.send(fiscal, apdu.CLA_GB, apdu.INS_VERIFY_FISCAL_PIN, data=bytes(8), le=8)
    assert e.value.sw == 0x6901
    assert fiscal.transmit(bytes.fromhex("80a40400")) == b"\x6e\x00"


def test_a_mute_card_fails_the_transmit_instead_of_hanging(served):
    rig, fiscal, _ = served
    rig.cards.fiscal.mute = True
    with pytest.raises(ReaderError):
        fiscal.transmit(bytes.fromhex("0084000008"))
