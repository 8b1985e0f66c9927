"""The till's receipt printer (HAL `printer`: write(bytes)): printed lines go to a file and a memory.

    p = SimPrinter(state / "printer.txt")      # appends; keeps the last KEEP lines in p.lines
    p.paper_out()                              # the next writes raise OSError(ENOSPC) until p.refill()

Bytes are UTF-8 text; a line is complete at b"\\n" (a partial line waits for the rest).  The file is the
paper roll: it only grows, one line per printed line, across simulator restarts.
"""

from __future__ import annotations

import errno
import os
from collections import deque
from pathlib import Path

KEEP = 500


class SimPrinter:
    def __init__(self, path: str | os.PathLike | None = None, keep: int = KEEP) -> None:
        self.path = Path(path) if path is not None else None
        self.lines: deque[str] = deque(maxlen=keep)
        self.printed = 0  # lines printed since this object was made
        self._partial = bytearray()
        self._fault: int | None = None

    def write(self, data: bytes) -> int:
        if self._fault is not None:
            raise OSError(self._fault, "printer: %s" % os.strerror(self._fault))
        self._partial += data
        if b"\n" not in data:
            return len(data)
        *done, rest = bytes(self._partial).split(b"\n")
        self._partial[:] = rest
        text = [line.decode("utf-8", "replace") for line in done]
        self.lines.extend(text)
        self.printed += len(text)
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write("".join(t + "\n" for t in text))
        return len(data)

    def paper_out(self, code: int = errno.ENOSPC) -> None:
        """Every write raises OSError(code) until refill()."""
        self._fault = code

    def refill(self) -> None:
        self._fault = None

    def tail(self, n: int = 20) -> list[str]:
        return list(self.lines)[-n:]
