"""Atomic file replacement for the host side: a reader sees the old content or the new, never a torn mix.

    write_atomic(path, data)                    # temp file beside it, fsync, rename, fsync the folder
    write_atomic(path, data, durable=False)     # atomic against a crash of this process only

The temporary file is in the target's folder (a rename is atomic only within one file system) and is
created with `mode` (0o600 by default: key stores, card files and the board's nvram hold secrets).
`durable` syncs the file before the rename and the folder after it, so the new content also survives a
host crash or power cut; without it a crash of the writing process still leaves the old file or the new.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: str | os.PathLike, data: bytes, *, durable: bool = True, mode: int = 0o600,
                 tmp: str | os.PathLike | None = None) -> None:
    """Replace `path` with `data`; `tmp` names the temporary file (default: `<path>.tmp` beside it)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp") if tmp is None else Path(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(bytes(data))
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if durable:
        sync_folder(path.parent)


def sync_folder(folder: str | os.PathLike) -> None:
    """fsync a folder, so a rename or unlink in it survives a host crash."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
