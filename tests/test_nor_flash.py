"""The NOR flash model: erase/program semantics, the extended block-device protocol, power loss, wear."""

import errno

import pytest

from hw_sim.nor_flash import (
    TEAR_NOTHING, TEAR_PREFIX, TEAR_RANDOM, WORN_EIO, WORN_STUCK, NorFlash, PowerLoss,
)


def flash(**kw):
    kw.setdefault("sector_count", 4)
    kw.setdefault("sector_size", 1024)
    kw.setdefault("page_size", 256)
    return NorFlash(**kw)


def read(f, block, offset, n):
    buf = bytearray(n)
    f.readblocks(block, buf, offset)
    return bytes(buf)


def test_a_new_chip_reads_all_ones():
    f = flash()
    assert read(f, 0, 0, 8) == b"\xff" * 8
    assert f.data == b"\xff" * 4096


def test_programming_can_only_clear_bits():
    f = flash()
    f.writeblocks(1, b"\x0f\xf0", 10)
    f.writeblocks(1, b"\xf3\x3f", 10)
    assert read(f, 1, 9, 4) == b"\xff\x03\x30\xff"


def test_erase_sets_the_whole_sector_to_ff_and_counts():
    f = flash()
    f.writeblocks(2, b"\x00" * 1024, 0)
    assert f.ioctl(6, 2) == 0
    assert read(f, 2, 0, 1024) == b"\xff" * 1024
    assert f.erase_counts == [0, 0, 1, 0]


def test_ioctl_reports_geometry_and_accepts_init_deinit_sync():
    f = flash()
    assert f.ioctl(4, 0) == 4
    assert f.ioctl(5, 0) == 1024
    assert f.ioctl(1, 0) == 0 and f.ioctl(2, 0) == 0 and f.ioctl(3, 0) == 0


def test_writeblocks_without_offset_erases_then_programs_whole_blocks():
    f = flash()
    f.writeblocks(0, b"\x00" * 2048, 0)
    f.writeblocks(0, b"\xaa" * 1024 + b"\x55" * 1024)
    assert read(f, 0, 0, 2) == b"\xaa\xaa" and read(f, 1, 1022, 2) == b"\x55\x55"
    assert f.erase_counts[:2] == [1, 1]


def test_a_program_spanning_pages_is_one_operation_per_page():
    f = flash()
    f.writeblocks(0, b"\x00" * 400, 200)  # bytes 200..599: pages 0, 1 and 2
    assert f.program_ops == 3 and f.ops == 3
    assert f.bytes_programmed == 400


def test_read_and_program_counters():
    f = flash()
    read(f, 0, 0, 100)
    f.writeblocks(0, b"\x00" * 10, 0)
    assert (f.read_ops, f.bytes_read, f.bytes_programmed) == (1, 100, 10)
    f.reset_stats()
    assert (f.read_ops, f.bytes_read, f.program_ops, f.erase_ops) == (0, 0, 0, 0)


def test_out_of_range_access_is_einval():
    f = flash()
    with pytest.raises(OSError) as e:
        f.readblocks(3, bytearray(2), 1023)
    assert e.value.errno == errno.EINVAL


class TestPowerLoss:
    def test_cut_after_n_lets_n_operations_complete_and_tears_the_next(self):
        f = flash()
        f.cut_after(2, TEAR_NOTHING)
        f.writeblocks(0, b"\x00", 0)
        f.writeblocks(0, b"\x00", 1)
        with pytest.raises(PowerLoss):
            f.writeblocks(0, b"\x00", 2)
        assert read_raw(f, 0, 4) == b"\x00\x00\xff\xff"

    def test_a_dead_device_answers_nothing_until_power_on(self):
        f = flash()
        f.cut_after(0)
        with pytest.raises(PowerLoss):
            f.ioctl(6, 0)
        with pytest.raises(PowerLoss):
            f.readblocks(0, bytearray(1), 0)
        f.power_on()
        assert read(f, 0, 0, 1) == b"\xff"

    def test_a_torn_program_leaves_a_prefix(self):
        f = flash(seed=7)
        f.cut_after(0, TEAR_PREFIX)
        with pytest.raises(PowerLoss):
            f.writeblocks(0, b"\x00" * 200, 0)
        got = read_raw(f, 0, 200)
        k = got.find(b"\xff")
        assert 0 <= k < 200 and got == b"\x00" * k + b"\xff" * (200 - k)

    def test_a_torn_program_clears_a_random_subset_of_the_bits(self):
        f = flash(seed=3)
        f.writeblocks(0, b"\x0f" * 64, 0)
        f.cut_after(0, TEAR_RANDOM)
        with pytest.raises(PowerLoss):
            f.writeblocks(0, b"\x00" * 64, 0)
        got = read_raw(f, 0, 64)
        assert all(b & 0xF0 == 0 for b in got)  # already-clear bits stay clear
        assert got != b"\x0f" * 64 and got != b"\x00" * 64

    def test_a_torn_erase_leaves_some_bytes_erased_and_others_old(self):
        f = flash(seed=5)
        f.writeblocks(1, b"\x00" * 1024, 0)
        f.cut_after(0, TEAR_RANDOM)
        with pytest.raises(PowerLoss):
            f.ioctl(6, 1)
        got = read_raw(f, 1024, 1024)
        assert set(got) == {0x00, 0xFF}
        assert f.erase_counts[1] == 1

    def test_a_torn_erase_prefix(self):
        f = flash(seed=9)
        f.writeblocks(1, b"\x00" * 1024, 0)
        f.cut_after(0, TEAR_PREFIX)
        with pytest.raises(PowerLoss):
            f.ioctl(6, 1)
        got = read_raw(f, 1024, 1024)
        k = got.find(b"\x00")
        assert got == b"\xff" * k + b"\x00" * (1024 - k)

    def test_the_same_seed_tears_the_same_bits(self):
        images = []
        for _ in range(2):
            f = flash(seed=11)
            f.cut_after(0, TEAR_RANDOM)
            with pytest.raises(PowerLoss):
                f.writeblocks(0, bytes(range(256)), 0)
            images.append(bytes(f.data))
        assert images[0] == images[1]


def read_raw(f, address, n):
    return bytes(f.data[address:address + n])


class TestWear:
    def test_a_worn_sector_refuses_to_erase_with_eio(self):
        f = flash(endurance=3, worn=WORN_EIO)
        for _ in range(3):
            f.ioctl(6, 0)
        with pytest.raises(OSError) as e:
            f.ioctl(6, 0)
        assert e.value.errno == errno.EIO

    def test_a_worn_sector_may_erase_with_stuck_bits(self):
        f = flash(endurance=1, worn=WORN_STUCK, seed=2)
        f.ioctl(6, 0)
        assert read_raw(f, 0, 1024) == b"\xff" * 1024
        f.ioctl(6, 0)
        assert read_raw(f, 0, 1024) != b"\xff" * 1024


def test_read_bit_flips_are_transient_and_seeded():
    f = flash(read_flip_rate=1.0, seed=4)
    assert read(f, 0, 0, 16) != b"\xff" * 16
    assert read_raw(f, 0, 16) == b"\xff" * 16


def test_flip_bit_damages_the_stored_contents():
    f = flash()
    f.flip_bit(5, 0)
    assert read(f, 0, 4, 2) == b"\xff\xfe"


def test_wipe_returns_a_factory_new_chip():
    f = flash()
    f.writeblocks(0, b"\x00" * 10, 0)
    f.ioctl(6, 1)
    f.wipe()
    assert f.data == b"\xff" * 4096 and f.erase_counts == [0] * 4 and f.ops == 0


def test_an_attached_image_keeps_contents_and_wear_across_restarts(tmp_path):
    path = str(tmp_path / "flash.img")
    f = flash()
    f.attach(path)
    f.ioctl(6, 3)
    f.writeblocks(0, b"\x12\x34", 0)
    f.cut_after(0, TEAR_PREFIX)
    with pytest.raises(PowerLoss):
        f.writeblocks(0, b"\x00" * 100, 2)
    torn = read_raw(f, 0, 102)
    f.close()
    g = flash()
    g.attach(path)
    assert read_raw(g, 0, 102) == torn and torn[:2] == b"\x12\x34"
    assert g.erase_counts == [0, 0, 0, 1]
    g.writeblocks(0, b"\xab", 100)
    g.close()
    h = flash()
    h.attach(path)
    assert read_raw(h, 100, 1) == b"\xab"
