"""Damage never bricks the till, and the till itself notices a journal cut short or rolled back.

Whatever the flash holds (blank, torn, a bit flipped, a sector erased, truncated, another history) and
whatever nvram or the cards answer, boot ends in a served link: normal, or locked FM_DAMAGED with the
reason in GET_STATUS (damage_kind, damage_sector, damage_offset, damage_index) and the read-out still
available.  Truncation and rollback are measured against the anchors of docs/FISCAL_MEMORY.md §11: the
nvram `anchor` (format id, index of the newest fiscal record, chain head after it) and the fiscal card's
last invoice number, clear-unlock sequence and declaration.
"""

import pytest

from fiscal_till import codes, layouts
from fiscal_till.records import encode
from fiscal_till.fallback import FallbackTill
from fiscal_till.journal_format import FISCAL_HDR_SIZE, FISCAL_REC_OVERHEAD, RING_HDR_SIZE, RING_SUCC_AT
from hw_sim.nor_flash import TEARS, PowerLoss
from protocol import journal_audit
from protocol import journal_format as JF
from protocol import records
from protocol import status
from testbed.rigs import TillRig

SECTOR = 4096
FM_DAMAGED = 1 << codes.LOCK_FM_DAMAGED
NONE16, NONE32 = 0xFFFF, 0xFFFFFFFF


def _kind(name):
    return [k for k, v in status.DAMAGE_KINDS.items() if v == name][0]


def ready_rig(invoices=5):
    rig = TillRig()
    rig.initialize()
    rig.bureau_sells_roll(1, 100)
    rig.ok("LOAD_ROLL")
    for i in range(invoices):
        rig.ok("ISSUE_INVOICE", **rig.invoice(100 + i))
    return rig


def damage(rig):
    st = rig.status()
    return st.lock_reasons & FM_DAMAGED, st.damage_kind, st.damage_sector, st.damage_offset, st.damage_index


def journal_end(rig):
    """(ring sector, free offset) and (fiscal tail sector, free offset) of the mounted journal."""
    j = rig.till.fiscal.jn
    return (j.F + j.r_run[-1], j.r_off), (j.f_tail, j.f_off)


def read_out(rig):
    """The whole read-out stream, in READ_JOURNAL pieces, and its audit."""
    data = b""
    while True:
        r = rig.ok("READ_JOURNAL", offset=len(data), length=4000)
        data += r.data
        if len(data) >= r.total:
            return journal_audit.audit_stream(data)


# ---- bricked by one bit ------------------------------------------------------------------------------
def test_one_flipped_bit_in_the_init_record_boots_locked_fm_damaged_naming_record_0():
    rig = ready_rig(1)
    rig.rtc.set(20260401)
    rig.ok("DAILY_CLOSE")  # ~86 daily records: INIT's sector is no longer the tail mount parses
    assert rig.till.fiscal.jn.f_tail >= 1
    rig.flash.flip_bit(FISCAL_HDR_SIZE + 44 + 10, 0)  # INIT body, fiscal sector 0
    rig.reboot()  # raised JournalError(EIO, 'damaged') before
    assert damage(rig) == (FM_DAMAGED, _kind("RECORD_CRC"), 0, FISCAL_HDR_SIZE, 0)
    rig.refused("ISSUE_INVOICE", "LOCK_FM_DAMAGED", **rig.invoice(100))
    rig.refused("INITIALIZE", "FM_DAMAGED", date=20260105, time=90000)  # never re-register over it
    assert read_out(rig).problems  # the auditor reads it and sees the damage


# ---- bricked by one cut at first boot ----------------------------------------------------------------
def _first_boot_cut_then_boot(cut, tear):
    """Blank 2 MiB flash, power cut at format operation `cut` (0-based) with `tear`, power back."""
    rig = TillRig()
    flash = rig.flash
    flash.wipe()
    rig.nvram.data.clear()
    flash.cut_after(cut, tear)
    with pytest.raises(PowerLoss):
        rig.reboot()
    flash.power_on()
    rig.reboot()
    return rig


FORMAT_OPS = 512 + 1  # 512 sector erases (top down), then the sector-0 header program (one page)


@pytest.mark.parametrize("tear", TEARS)
@pytest.mark.parametrize("cut", [0, 1, 255, 510, 511, 512])
def test_a_power_cut_in_the_first_boot_format_recovers_at_the_next_boot(cut, tear):
    rig = _first_boot_cut_then_boot(cut, tear)  # before: JournalError(ENODEV, 'media') at every boot
    st = rig.status()
    assert (st.state, st.lock_reasons, st.damage_kind) == (0, 1 << codes.LOCK_NOT_INITIALIZED, 0)
    rig.initialize()
    assert rig.status().lock_reasons == 1 << codes.LOCK_NO_ROLL


@pytest.mark.slow
@pytest.mark.parametrize("tear", TEARS)
def test_a_power_cut_at_every_operation_of_the_first_boot_format_recovers(tear):
    for cut in range(FORMAT_OPS):
        rig = _first_boot_cut_then_boot(cut, tear)
        st = rig.status()
        assert (st.lock_reasons, st.damage_kind) == (1 << codes.LOCK_NOT_INITIALIZED, 0), (cut, tear)


def test_the_format_counts_one_operation_per_sector_and_one_header_program():
    rig = TillRig()
    assert rig.flash.ops == FORMAT_OPS


def test_blank_flash_under_an_initialized_till_is_never_formatted_over():
    rig = ready_rig()
    rig.flash.wipe()
    rig.reboot()
    assert damage(rig) == (FM_DAMAGED, _kind("TRUNCATED"), 0, NONE32, 0)
    rig.refused("INITIALIZE", "FM_DAMAGED", date=20260105, time=90000)
    assert rig.flash.ops == 0  # nothing erased, nothing programmed


# ---- truncation unnoticed ----------------------------------------------------------------------------
def test_erasing_the_last_300_bytes_of_the_detail_locks_truncated_at_the_journal_end():
    rig = ready_rig()
    (s, off), _ = journal_end(rig)
    a = s * SECTOR + off
    rig.flash.data[a - 300:a] = b"\xff" * 300
    rig.reboot()
    locked, kind, sector, _off, index = damage(rig)
    assert (locked, kind, sector) == (FM_DAMAGED, _kind("TRUNCATED"), s)
    assert index == rig.till.fiscal.jn.next_index  # the first record missing
    rig.refused("ISSUE_INVOICE", "LOCK_FM_DAMAGED", **rig.invoice(100))
    read_out(rig)


def test_erasing_the_last_300_bytes_of_the_fiscal_area_locks_truncated():
    rig = ready_rig()
    rig.rtc.set(20260201)
    rig.ok("DAILY_CLOSE")  # 27 daily records: the journal ends in the fiscal area
    _, (s, off) = journal_end(rig)
    a = s * SECTOR + off
    rig.flash.data[a - 300:a] = b"\xff" * 300
    rig.reboot()
    assert damage(rig)[:3] == (FM_DAMAGED, _kind("TRUNCATED"), s)


def test_erasing_the_newest_ring_sector_locks_truncated():
    rig = ready_rig()
    (s, _), _ = journal_end(rig)
    rig.flash.data[s * SECTOR:(s + 1) * SECTOR] = b"\xff" * SECTOR
    rig.reboot()
    assert damage(rig)[:2] == (FM_DAMAGED, _kind("TRUNCATED"))


def test_erasing_the_fiscal_tail_sector_locks_truncated():
    rig = ready_rig(1)
    rig.rtc.set(20260401)
    rig.ok("DAILY_CLOSE")  # ~86 daily records: more than one fiscal sector
    _, (s, _) = journal_end(rig)
    assert s >= 1
    rig.flash.data[s * SECTOR:(s + 1) * SECTOR] = b"\xff" * SECTOR
    rig.reboot()
    assert damage(rig)[:3] == (FM_DAMAGED, _kind("TRUNCATED"), s - 1)


def test_truncation_is_noticed_when_the_fiscal_card_comes_back():
    rig = ready_rig()
    (s, off), _ = journal_end(rig)
    a = s * SECTOR + off
    rig.flash.data[a - 100:a] = b"\xff" * 100  # the last invoice: only the card knows it
    card = rig.fiscal_slot.remove()
    rig.reboot()
    assert damage(rig)[0] == 0
    rig.fiscal_slot.insert(card)
    rig.refused("ISSUE_INVOICE", "LOCK_FM_DAMAGED", **rig.invoice(100))
    assert damage(rig)[:3] == (FM_DAMAGED, _kind("TRUNCATED"), s)


def test_an_older_image_put_back_locks_truncated():
    rig = ready_rig()
    old = bytes(rig.flash.data)
    rig.ok("ISSUE_INVOICE", **rig.invoice(7))
    rig.rtc.set(20260110)
    rig.ok("DAILY_CLOSE")
    rig.flash.data[:] = old
    rig.reboot()
    assert damage(rig)[:2] == (FM_DAMAGED, _kind("TRUNCATED"))


def test_an_older_image_continued_along_another_history_locks_rollback():
    from fiscal_till.fiscal import machine_device_id
    from fiscal_till.journal import Journal
    rig = ready_rig()
    old = bytes(rig.flash.data)
    rig.rtc.set(20260110)
    rig.ok("DAILY_CLOSE")  # the anchor moves to these daily records
    rig.flash.data[:] = old
    jn = Journal(rig.flash, machine_device_id(rig.machine_no))
    while jn.next_index <= rig.till.fiscal.jn.next_index:  # other records at the anchored index
        jn.append(codes.REC_EVENT, encode(layouts.EVENT_RECORD, {"request": {"rid": 0, "digest": 0}, "date": 20260105,
                                                           "time": 120000, "event": codes.EV_POWER_ON, "arg": 9}))
    rig.reboot()
    assert damage(rig)[:2] == (FM_DAMAGED, _kind("ROLLBACK"))


def test_a_journal_formatted_again_locks_rollback():
    from fiscal_till.fiscal import machine_device_id
    from fiscal_till.journal import Journal
    other = ready_rig()  # the same device's journal, another format
    rig = ready_rig()
    rig.flash.data[:] = other.flash.data
    rig.reboot()
    assert damage(rig)[:2] == (FM_DAMAGED, _kind("ROLLBACK"))
    assert Journal(rig.flash, machine_device_id(rig.machine_no)).damage == []


def test_another_devices_journal_locks_foreign_device():
    rig = ready_rig()
    other = TillRig()
    other.machine_no = "9" * 16
    from fiscal_till.fiscal import machine_device_id
    from fiscal_till.journal import Journal
    other.flash.wipe()
    Journal.format(other.flash, machine_device_id("9" * 16))
    rig.flash.data[:] = other.flash.data
    rig.reboot()
    assert damage(rig)[:2] == (FM_DAMAGED, _kind("FOREIGN_DEVICE"))


def test_healthy_reboots_and_every_operation_keep_the_anchors_in_step():
    rig = ready_rig()
    for _ in range(3):
        rig.reboot()
        assert damage(rig) == (0, 0, NONE16, NONE32, NONE32)
    rig.rtc.set(20260201)
    rig.ok("DAILY_CLOSE")
    rig.ok("DECLARE", end=20260131)
    rig.bureau_clears(20260331)
    rig.ok("CLEAR_UNLOCK")
    rig.reboot()
    assert damage(rig) == (0, 0, NONE16, NONE32, NONE32)


def test_no_nvram_write_is_added_per_invoice():
    rig = ready_rig()
    puts = []
    real = rig.nvram.put
    rig.nvram.put = lambda k, v: (puts.append(k), real(k, v))
    rig.ok("ISSUE_INVOICE", **rig.invoice(5))
    assert puts == ["intent"]


# ---- nvram and cards answering garbage -----------------------------------------------------------------
@pytest.mark.parametrize("key,value", [("intent", b"\x22\x01"), ("intent", b"\x22" + bytes(8) + b"\xff" * 20),
                                       ("intent", b"\x99" * 12), ("anchor", b"junk")])
def test_garbage_in_nvram_boots_locked_nvram(key, value):
    rig = ready_rig()
    rig.nvram.data[key] = value
    rig.reboot()
    assert damage(rig)[:2] == (FM_DAMAGED, _kind("NVRAM"))
    read_out(rig)


@pytest.mark.parametrize("answer", [b"", b"\x90", b"\x00" * 3 + b"\x90\x00", bytes(range(200)) + b"\x90\x00"])
def test_a_fiscal_card_answering_garbage_boots_with_the_link_served(answer):
    rig = ready_rig()
    rig.fiscal_slot.transmit = lambda apdu: answer
    rig.reboot()
    st = rig.status()
    assert st.lock_reasons  # locked (the card is unusable), never crashed
    rig.ok("GET_INFO")
    read_out(rig)


# ---- the fallback -------------------------------------------------------------------------------------
def test_when_the_fiscal_core_cannot_start_the_fallback_still_serves_info_status_and_read_out(monkeypatch):
    from fiscal_till import device, fallback
    from fiscal_till.server import LinkServer
    rig = ready_rig()

    def broken(self):
        raise MemoryError("no heap")
    monkeypatch.setattr(device.Fiscal, "start", broken)
    till = fallback.make_till(rig.board())
    assert isinstance(till, FallbackTill)
    rig.till, rig.server = till, LinkServer(till)
    assert rig.ok("GET_INFO").machine_no == rig.machine_no
    st = rig.status()
    assert st.lock_reasons & FM_DAMAGED and st.damage_kind == _kind("OTHER")
    assert read_out(rig).problems == []
    rig.refused("ISSUE_INVOICE", "LINK_DEVICE_FAULT", **rig.invoice(1))


# ---- bit-flip campaign ----------------------------------------------------------------------------------
class Campaign:
    """One journal (INIT, roll load, 5 invoices, the boot's POWER_ON event), restored before each flip."""

    def __init__(self):
        rig = ready_rig()
        rig.reboot()
        self.rig = rig
        self.image = bytes(rig.flash.data)
        self.anchor = rig.nvram.data["anchor"]
        j = rig.till.fiscal.jn
        self.ring = j.F + j.r_run[-1]
        self.fiscal_end = j.f_off
        self.ring_end = j.r_off
        self.last = rig.flash.sector_count - 1
        recs = list(j._walk())
        self.fiscal_recs = [(off, sec) for idx, t, b, st, sec, off in recs if t != codes.REC_INVOICE]
        self.invoices = [(off, sec) for idx, t, b, st, sec, off in recs if t == codes.REC_INVOICE]

    def regions(self):
        """name -> (sector, first byte, end byte, expected): 'lock' or 'free' (no lock)."""
        (init_off, _), *fiscal = self.fiscal_recs
        inv = self.invoices
        return {
            "init record": (0, init_off, fiscal[0][0] - 1, "lock"),  # the commit byte is its last
            "fiscal sector header": (0, 0, FISCAL_HDR_SIZE, "lock"),
            "ring sector header": (self.ring, 0, RING_SUCC_AT, "lock"),
            "fiscal records": (0, fiscal[0][0], self.fiscal_end, "lock"),
            "invoice records": (self.ring, inv[0][0], self.ring_end, "lock"),
            "free fiscal space": (0, self.fiscal_end, SECTOR, "free"),
            "free ring space": (self.ring, self.ring_end, SECTOR, "free"),
            "last sector body": (self.last, RING_HDR_SIZE, SECTOR, "free"),
            "last sector header": (self.last, 0, RING_HDR_SIZE, "lock"),
        }

    def commit_bytes(self):
        """(sector, offset) of every record's commit byte: one bit of it set still reads committed."""
        out = []
        for recs, end in ((self.fiscal_recs, self.fiscal_end), (self.invoices, self.ring_end)):
            for i, (off, sec) in enumerate(recs):
                nxt = recs[i + 1][0] if i + 1 < len(recs) and recs[i + 1][1] == sec else end
                out.append((sec, nxt - 1))
        return out

    def run(self, sector, off, bit):
        """Flip one bit, boot; returns (locked, kind, sector) after checking the link is served."""
        rig = self.rig
        rig.flash.data[:] = self.image
        rig.nvram.data["anchor"] = self.anchor
        rig.nvram.data.pop("intent", None)
        rig.flash.flip_bit(sector * SECTOR + off, bit)
        rig.reboot()
        st = rig.status()
        assert rig.ok("GET_INFO").machine_no == rig.machine_no
        head = rig.ok("READ_JOURNAL", offset=0, length=JF.STREAM_HDR_SIZE)
        assert len(head.data) == JF.STREAM_HDR_SIZE
        locked = bool(st.lock_reasons & FM_DAMAGED)
        if locked:
            assert st.damage_kind != 0
            rig.refused("ISSUE_INVOICE", "LOCK_FM_DAMAGED", **rig.invoice(1))
        else:
            assert (st.damage_kind, st.damage_sector, st.damage_offset, st.damage_index) == (0, NONE16, NONE32, NONE32)
        return locked, st.damage_kind, st.damage_sector

    def check(self, name, step, bits=None, lo=None, hi=None):
        sector, a, b, expected = self.regions()[name]
        a, b = max(a, lo if lo is not None else a), min(b, hi if hi is not None else b)
        commits = set(self.commit_bytes())
        runs = 0
        for off in range(a, b, step):
            if (sector, off) in commits:
                continue  # test_one_bit_set_in_a_commit_byte_keeps_the_record_committed
            for bit in bits or range(0, 8, 1 if step == 1 else 3):
                locked, kind, where = self.run(sector, off, bit)
                runs += 1
                if expected == "free":
                    assert not locked, (name, off, bit, kind)
                else:
                    assert locked, (name, off, bit)
                    # the damaged sector is named, or the cross-check that noticed it names its own
                    assert where == sector or kind in CROSS_CHECKS, (name, off, bit, kind, where)
        return runs


CROSS_CHECKS = {_kind("SEQUENCE"), _kind("LOST_RECORDS"), _kind("CHAIN"), _kind("TRUNCATED")}


@pytest.fixture(scope="module")
def campaign():
    return _plan_campaign()


REGIONS = ["init record", "fiscal sector header", "ring sector header", "fiscal records", "invoice records",
           "free fiscal space", "free ring space", "last sector body", "last sector header"]


@pytest.mark.parametrize("region", REGIONS)
def test_bit_flips_sampled_across_the_journal_end_in_a_served_link_with_the_right_lock(campaign, region):
    sector, a, b, _ = campaign.regions()[region]
    step = max(1, (b - a) // 12)  # about a dozen bytes a region, bits 0, 3, 6 of each
    assert campaign.check(region, step) >= 12


def test_one_bit_set_in_a_commit_byte_keeps_the_record_committed(campaign):
    for sector, off in campaign.commit_bytes():
        assert campaign.run(sector, off, 5)[0] is False, (sector, off)


FREE = ("free fiscal space", "free ring space", "last sector body")
CHUNK = 128  # bytes of a data region per slow test (each well inside the 300 s hang guard)


def _slow_plan():
    """(region, first byte, end byte) per slow test: every bit of every byte of the data regions (INIT,
    headers, records); in erased regions every bit of every 16th byte."""
    c = _plan_campaign()
    out = []
    for name in REGIONS:
        _, a, b, _ = c.regions()[name]
        size = CHUNK * (16 if name in FREE else 1)
        out += [(name, lo, min(b, lo + size)) for lo in range(a, b, size)]
    return out


_PLAN = []


def _plan_campaign():
    if not _PLAN:
        _PLAN.append(Campaign())
    return _PLAN[0]


@pytest.mark.slow
@pytest.mark.parametrize("region,lo,hi", _slow_plan(), ids=lambda v: str(v).replace(" ", "-"))
def test_every_bit_of_every_region_flipped_ends_in_a_served_link_with_the_right_lock(region, lo, hi):
    c = _plan_campaign()
    step = 16 if region in FREE else 1
    runs = c.check(region, step, range(8), lo, hi)
    sector = c.regions()[region][0]
    commits = len([x for x in c.commit_bytes() if x[0] == sector and lo <= x[1] < hi]) if step == 1 else 0
    assert runs == (len(range(lo, hi, step)) - commits) * 8 or step > 1


def test_set_time_refused_by_damaged_fiscal_memory_leaves_the_clock_and_nvram_as_they_were():
    """R-INPUT-CHECKED: the CLOCK_SET event cannot be written, so the clock does not move and no
    operation is left pending for the next boot to finish."""
    rig = ready_rig(1)
    init_envelope = FISCAL_REC_OVERHEAD + records.InitRecord.sizeof()
    rig.flash.flip_bit(FISCAL_HDR_SIZE + init_envelope + FISCAL_REC_OVERHEAD, 0)  # the record after INIT
    rig.reboot()
    assert damage(rig)[0] == FM_DAMAGED and rig.till.fiscal.initialized()
    rig.user_slot.remove()
    rig.user_slot.insert(rig.cards.management)
    before = rig.rtc.t
    rig.refused("SET_TIME", "FM_DAMAGED", date=rig.rtc.date + 1, time=80000)
    assert rig.rtc.t == before
    assert rig.nvram.get("intent") is None
