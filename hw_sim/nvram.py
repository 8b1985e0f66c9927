"""The board's nvram (firmware/fiscal_till/nvram.py's contract) kept in a folder: one file per key.

    nv = FolderNvram(state / "nvram")        # fsync=True: durable against a host crash too
    nv.put("pin", b"...")  ->  nvram/pin

put() writes a temporary file beside the target and renames it over the old one, so at any moment the
file holds the old value or the new one, never a torn mix: the atomicity the firmware's intents rely on.
With fsync the file and the folder are synced before put() and delete() return; without it (the
default) a simulator crash is still atomic, only a host crash could lose the last writes.
Keys are what the firmware uses ("pin", "intent"): 1 to 64 characters from [A-Za-z0-9_-]; another key is
a ValueError (the bus answers BAD_ARGS).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from protocol.fileio import sync_folder, write_atomic

_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


class FolderNvram:
    def __init__(self, folder: str | os.PathLike, *, fsync: bool = False) -> None:
        self.folder = Path(folder)
        self.fsync = fsync
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob(".*.tmp"):  # a put cut short: the old value stands
            stale.unlink()

    def _path(self, key: str) -> Path:
        if not isinstance(key, str) or not _KEY.match(key):
            raise ValueError("bad nvram key %r" % (key,))
        return self.folder / key

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def put(self, key: str, value: bytes) -> None:
        # mode 0o600: the PIN lives here; the temp name is the one __init__ sweeps
        write_atomic(self._path(key), value, durable=self.fsync, tmp=self.folder / (".%s.tmp" % key))

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return
        self._sync_folder()

    def keys(self) -> list[str]:
        return sorted(p.name for p in self.folder.iterdir() if _KEY.match(p.name))

    def _sync_folder(self) -> None:
        if self.fsync:
            sync_folder(self.folder)
