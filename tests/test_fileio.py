"""protocol.fileio.write_atomic: the old content or the new, never a torn file; durable means synced."""
from __future__ import annotations

import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import fileio


def test_write_creates_the_file_with_exactly_the_bytes_and_owner_only_mode(tmp_path):
    target = tmp_path / "card.json"
    fileio.write_atomic(target, b"\x00new\xff")
    assert target.read_bytes() == b"\x00new\xff"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["card.json"]


def test_write_replaces_old_content_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "rid"
    target.write_bytes(b"old content, longer than the new")
    fileio.write_atomic(target, b"7\n", durable=False, tmp=tmp_path / ".rid.42.tmp")
    assert target.read_bytes() == b"7\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rid"]


def test_a_crash_before_the_rename_leaves_the_old_content(tmp_path, monkeypatch):
    target = tmp_path / "pin"
    target.write_bytes(b"old")

    def crash(src, dst):
        raise OSError("power cut")
    monkeypatch.setattr(fileio.os, "replace", crash)
    with pytest.raises(OSError):
        fileio.write_atomic(target, b"new")
    assert target.read_bytes() == b"old"


def test_durable_syncs_the_file_and_the_folder_and_not_durable_syncs_nothing(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(fileio.os, "fsync", lambda fd: synced.append(os.fstat(fd).st_mode) or real_fsync(fd))
    fileio.write_atomic(tmp_path / "a", b"x")
    assert [stat.S_ISREG(m) for m in synced] == [True, False]  # the file first, then its folder
    synced.clear()
    fileio.write_atomic(tmp_path / "b", b"x", durable=False)
    assert synced == []


def test_mode_is_applied_to_a_new_file(tmp_path):
    old = os.umask(0o022)
    try:
        fileio.write_atomic(tmp_path / "clock.json", b"{}", mode=0o666)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "clock.json").stat().st_mode) == 0o644


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=70000))
def test_any_bytes_round_trip(tmp_path_factory, data):
    target = tmp_path_factory.mktemp("f") / "blob"
    fileio.write_atomic(target, data, durable=False)
    assert target.read_bytes() == data
