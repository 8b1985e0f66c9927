"""Firmware identity: version string and the firmware hash a certification suite records.

The hash is SHA-256 over the package's modules in sorted name order, each contributing
`name NUL length(4, big-endian) content`.  `make firmware` freezes the hash of the .py sources into
`_build.py` (the one module left out of the hash) because a board running frozen .mpy files cannot read
its own sources; a development run computes it from the files.
"""

import hashlib
import os

FW_VERSION = "0.1.0"
MODEL = "FTK-1"

_EXCLUDED = ("_build.py",)


def _package_dir():
    f = __file__
    i = f.rfind("/")
    return f[:i] if i >= 0 else "."


def source_hash(directory=None):
    """SHA-256 over the package's .py files, by the rule above."""
    d = directory or _package_dir()
    names = [n for n in os.listdir(d) if n.endswith(".py") and n not in _EXCLUDED]
    names.sort()
    h = hashlib.sha256()
    for n in names:
        with open(d + "/" + n, "rb") as fh:
            data = fh.read()
        h.update(n.encode())
        h.update(b"\x00")
        h.update(len(data).to_bytes(4, "big"))
        h.update(data)
    return h.digest()


_hash = None


def firmware_hash():
    global _hash
    if _hash is None:
        try:
            from ._build import FW_HASH  # type: ignore[import-not-found]  # written by make firmware
            _hash = FW_HASH
        except ImportError:
            _hash = source_hash()
    return _hash
