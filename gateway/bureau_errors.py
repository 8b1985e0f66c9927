"""Exceptions of the bureau library (key store, issuance, verification, readers).  Every refusal raises
one of these with a message that says what was refused and why; nothing is refused silently."""

from __future__ import annotations

from protocol import errors


class BureauError(Exception):
    """Base of every refusal by the bureau library."""


class KeyStoreError(BureauError):
    """The key store cannot be opened, read or written (wrong passphrase, damaged, wrong format)."""


class TestKeyRefused(KeyStoreError):
    """A published test key outside test mode, or a production key inside it."""

    __test__ = False  # not a pytest class


class IssuanceError(BureauError):
    """Card issuance, roll or control data refused: the message names the bad field."""


class VerificationError(BureauError):
    """Data failed verification; `problems` lists every failed check, not just the first."""

    def __init__(self, message: str, problems: list[str]):
        super().__init__("%s: %s" % (message, "; ".join(problems)))
        self.problems = list(problems)


class DeclarationRejected(VerificationError):
    """A declaration that did not verify: no clear-unlock data is made for it."""


class DatabaseUnavailable(BureauError):
    """The bureau's database cannot be opened or written (a folder given as the file, a file that is not a
    database, a read-only place, an unreachable server): the message says which and what to do."""


class ReaderError(BureauError):
    """The reader or the card did not answer (no reader, no card, mute card, PC/SC failure)."""


class CardStatusError(ReaderError):
    """The card answered a status word other than the one expected; `error` is its row in the error table."""

    def __init__(self, sw: int, ins: int, what: str = ""):
        self.sw, self.ins = sw, ins
        self.error = errors.from_card_sw(sw, ins)
        super().__init__("%scard answered %04X to INS %02X: %s" % (what + ": " if what else "", sw, ins,
                                                                    errors.describe(self.error.code)))
