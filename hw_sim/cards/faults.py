"""What a card slot raises when no answer comes back (the HAL contract for faults).

A command that reaches a card always gets a status word; these exceptions are for the cases where no
response APDU exists at all.  They are `OSError`s with an errno, the MicroPython driver convention, so
firmware written as `except OSError as e: e.errno` works on a board and in the simulator alike:

    CardMuteError     errno ETIMEDOUT  the card is present but does not answer (damaged, mute)
    CardAbsentError   errno ENODEV     no card in the slot, pulled out, or not powered
"""

from __future__ import annotations

import errno


class CardIOError(OSError):
    """No response APDU: see the subclasses."""

    ERRNO = errno.EIO

    def __init__(self, message: str):
        super().__init__(self.ERRNO, message)


class CardMuteError(CardIOError):
    ERRNO = errno.ETIMEDOUT


class CardAbsentError(CardIOError):
    ERRNO = errno.ENODEV
