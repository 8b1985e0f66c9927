"""The ISO 7816 core every simulated card shares: ATR, power, APDU dispatch, files, ISO commands.

Theory of operation
-------------------
`SimCard.process(apdu) -> response` is the whole card: bytes in, bytes out, acting on `self.state` (what
a card keeps in EEPROM, a dataclass that hw_sim.cards.store persists) and `self.session` (RAM: the
selected file, a challenge, a verified PIN; cleared by power-off and reset).  It never raises: every
input gets a status word.  An exception escaping a handler is a simulator bug; it answers 6F00, which the
fuzz tests count as a failure.  `transmit()` adds the physical layer: power and fault injection.

Dispatch order, so the status word of a bad APDU is predictable: shorter than 4 bytes 6700; CLA other
than 00 (ISO) or C0 (GB) 6E00; INS unknown in that class 6D00; Lc/Le inconsistent with the length 6700;
card permanently locked 9303 (only SELECT, READ BINARY, READ RECORD and GET RESPONSE still work, so the
bureau can read a locked card out); then the command's own checks.

A refused command changes no card state.  A handler checks everything first and writes last.  The only
writes a refusal makes are the ones it exists to make: the PIN try counter (63Cx, 6983), the MAC failure
counter and the permanent lock (9302, 9303), the verified/authenticated flags a failed VERIFY or
authentication clears, and the single-use challenge or registration random it consumes.

The cards answer only status words of the error table (protocol/errors.py): 9000 6700 6901 6982 6983
6985 6A80 6A82 63Cx 9302 9303 9401 6D00 6E00, plus 61xx in T=0 mode (`t0 = True`: response data waits
for GET RESPONSE).  Where ISO 7816-4 has a finer word (6A86 wrong P1-P2, 6B00 offset outside the file,
6A83 record not found, 6986 no current EF) these cards use 6A80, 6A80, 6A82 and 6985.

Files live under the card's single DF, which is selected at reset; SELECT by DF name confirms the card
type (another name: 6A82).  EFs are selected by file id (SELECT P1 00/02) or addressed by short file id
(SFI = low 5 bits of the file id) in READ/UPDATE BINARY (P1 = 80|SFI, P2 = offset) and READ/UPDATE RECORD
(P1 = record number from 1, P2 = SFI<<3 | 4; SFI 0 = current EF).  A record file grows by UPDATE RECORD
of the record after its last one (domain §2 lists no APPEND RECORD) up to its capacity (6985 when full).
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass

import construct as cs

from protocol import apdu as apdu_layouts
from protocol import rules

from .faults import CardAbsentError, CardMuteError

SW_OK = 0x9000
SW_WRONG_LENGTH = 0x6700
SW_REGISTRATION = 0x6901  # already registered / not registered
SW_SECURITY = 0x6982  # needs a prior VERIFY or authentication
SW_PIN_BLOCKED = 0x6983
SW_CONDITIONS = 0x6985
SW_BAD_DATA = 0x6A80
SW_NOT_FOUND = 0x6A82
SW_MAC = 0x9302
SW_LOCKED = 0x9303
SW_LIMIT = 0x9401  # amount over limit (ISSUE_INVOICE); no roll left (DISTRIBUTE_INVOICE_NB)
SW_INS = 0x6D00
SW_CLA = 0x6E00
SW_NO_DIAGNOSIS = 0x6F00  # never sent by a correct card: a simulator bug


def sw_pin_wrong(tries_left: int) -> int:
    """63Cx: wrong PIN, x tries left."""
    return 0x63C0 | tries_left


PIN_TRIES = rules.THRESHOLDS["CARD_PIN_TRIES"]  # R-LOCK-PIN: wrong PINs before the PIN blocks (63C2, 63C1, 6983)
MAC_TRIES = apdu_layouts.MAC_TRIES  # R-LOCK-MAC: consecutive MAC failures that lock a card for good (9303)
WRITE_BUREAU = "bureau"  # FileSpec.write: after the bureau's EXTERNAL AUTHENTICATE
_READ_ONLY = {(apdu_layouts.CLA_ISO, apdu_layouts.INS_SELECT), (apdu_layouts.CLA_ISO, apdu_layouts.INS_READ_BINARY), (apdu_layouts.CLA_ISO, apdu_layouts.INS_READ_RECORD),
              (apdu_layouts.CLA_ISO, apdu_layouts.INS_GET_RESPONSE)}


class Refuse(Exception):
    """Raised by a handler to answer a status word without data."""

    def __init__(self, sw: int):
        super().__init__("SW %04X" % sw)
        self.sw = sw


def make_atr(historical: bytes) -> bytes:
    """3B 8K 01 <historical bytes> TCK: direct convention, TD1 announces T=1 only, K historical bytes."""
    if len(historical) > 15:
        raise ValueError("at most 15 historical bytes")
    body = bytes([0x80 | len(historical), 0x01]) + historical
    tck = 0
    for b in body:
        tck ^= b
    return b"\x3b" + body + bytes([tck])


@dataclass(frozen=True)
class FileSpec:
    """An EF: its layout (protocol/cardfiles.py), record capacity (0: transparent) and who may write it."""

    fid: int
    layout: cs.Construct
    records: int = 0
    write: str | None = None  # None: only the card's own commands change it

    @property
    def size(self) -> int:
        return self.layout.sizeof()


@dataclass(kw_only=True)
class CardState:
    """EEPROM common to all cards: the MAC failure counter and the permanent lock."""

    mac_failures: int = 0
    locked: bool = False


@dataclass(kw_only=True)
class Session:
    """RAM: cleared by power-off and reset."""

    ef: int | None = None  # current EF
    challenge: bytes | None = None  # from GET CHALLENGE, single use
    pending: bytes = b""  # response data waiting for GET RESPONSE (T=0 mode)
    bureau: bool = False  # the bureau authenticated (user card)


class SimCard:
    """Base of the fiscal, user and management cards.  Subclasses set KIND, DF_NAME, FILES, SESSION and
    add handlers in `_extra_handlers()`; they implement `read_file`, `read_records` and, for writable
    files, `write_file` / `write_records`."""

    KIND = "card"
    DF_NAME = b""
    FILES: dict[int, FileSpec] = {}
    SESSION: type[Session] = Session

    def __init__(self, state: CardState, *, rng: Callable[[int], bytes] | None = None):
        self.state = state
        self.rng = rng or os.urandom
        self.powered = False
        self.mute = False  # fault injection: power_on and transmit raise CardMuteError
        self.t0 = False  # T=0 behaviour: response data is fetched with GET RESPONSE (SW 61xx)
        self.session = self.SESSION()
        self._handlers: dict[tuple[int, int], Callable] = {
            (apdu_layouts.CLA_ISO, apdu_layouts.INS_SELECT): self._select,
            (apdu_layouts.CLA_ISO, apdu_layouts.INS_READ_BINARY): self._read_binary,
            (apdu_layouts.CLA_ISO, apdu_layouts.INS_UPDATE_BINARY): self._update_binary,
            (apdu_layouts.CLA_ISO, apdu_layouts.INS_READ_RECORD): self._read_record,
            (apdu_layouts.CLA_ISO, apdu_layouts.INS_UPDATE_RECORD): self._update_record,
            (apdu_layouts.CLA_ISO, apdu_layouts.INS_GET_CHALLENGE): self._get_challenge,
            (apdu_layouts.CLA_ISO, apdu_layouts.INS_GET_RESPONSE): self._get_response,
        }
        self._handlers.update(self._extra_handlers())
        self._by_sfi = {f.fid & 0x1F: f for f in self.FILES.values()}

    def _extra_handlers(self) -> dict[tuple[int, int], Callable]:
        return {}

    # ---- physical layer ------------------------------------------------------------------------------
    @property
    def atr(self) -> bytes:
        return make_atr(b"FTK" + self.DF_NAME)

    def power_on(self) -> bytes:
        """Cold reset: RAM cleared, the DF selected; returns the ATR."""
        if self.mute:
            raise CardMuteError("%s card gives no ATR" % self.KIND)
        self.powered = True
        self.session = self.SESSION()
        return self.atr

    def reset(self) -> bytes:
        """Warm reset: same effect as power_on for these cards."""
        return self.power_on()

    def power_off(self) -> None:
        self.powered = False
        self.session = self.SESSION()

    def transmit(self, apdu: bytes) -> bytes:
        """One command APDU -> response APDU (data + SW1 SW2)."""
        if self.mute:
            raise CardMuteError("%s card does not answer" % self.KIND)
        if not self.powered:
            raise CardAbsentError("%s card is not powered" % self.KIND)
        return self.process(apdu)

    # ---- the card ---------------------------------------------------------------------------------------
    def process(self, apdu: bytes) -> bytes:
        """The sans-IO card: never raises; answers data + status word."""
        try:
            data, sw = self._dispatch(bytes(apdu))
        except Refuse as r:
            data, sw = b"", r.sw
        except Exception:  # a bug in the simulator, never a card answer: the fuzz tests look for 6F00
            data, sw = b"", SW_NO_DIAGNOSIS
        return data + bytes((sw >> 8, sw & 0xFF))

    def _dispatch(self, raw: bytes) -> tuple[bytes, int]:
        if len(raw) < 4:
            raise Refuse(SW_WRONG_LENGTH)
        cla, ins = raw[0], raw[1]
        if cla not in (apdu_layouts.CLA_ISO, apdu_layouts.CLA_GB):
            raise Refuse(SW_CLA)
        handler = self._handlers.get((cla, ins))
        if handler is None:
            raise Refuse(SW_INS)
        try:
            cmd = apdu_layouts.Command.parse(raw)
        except cs.ConstructError:
            raise Refuse(SW_WRONG_LENGTH) from None
        if self.state.locked and (cla, ins) not in _READ_ONLY:
            raise Refuse(SW_LOCKED)
        if ins != apdu_layouts.INS_GET_RESPONSE:
            self.session.pending = b""
        out = handler(cmd) or b""
        if isinstance(out, tuple):  # (data, sw): GET RESPONSE with more to come
            return out
        if self.t0 and out and ins != apdu_layouts.INS_GET_RESPONSE:
            self.session.pending = bytes(out)
            return b"", 0x6100 | (len(out) & 0xFF)
        return bytes(out), SW_OK

    def snapshot(self) -> tuple[dict, dict]:
        """Deep copy of (state, session) as plain data, for tests that compare before and after."""
        return copy.deepcopy(dataclasses.asdict(self.state)), copy.deepcopy(dataclasses.asdict(self.session))

    # ---- helpers for handlers ------------------------------------------------------------------------
    @staticmethod
    def need_p1p2(cmd, p1: int = 0, p2: int = 0) -> None:
        if cmd.p1 != p1 or cmd.p2 != p2:
            raise Refuse(SW_BAD_DATA)

    @staticmethod
    def need_len(cmd, n: int) -> bytes:
        if len(cmd.data) != n:
            raise Refuse(SW_WRONG_LENGTH)
        return cmd.data

    @staticmethod
    def parse(layout: cs.Construct, data: bytes):
        """Parse command data; any failure (check byte, BCD, text) is bad data (6A80)."""
        try:
            return layout.parse(data)
        except (cs.ConstructError, ValueError, UnicodeError):
            raise Refuse(SW_BAD_DATA) from None

    def mac_failed(self) -> None:
        """Count a MAC failure and refuse: 9302, or 9303 once MAC_TRIES consecutive failures lock the card."""
        # R-LOCK-MAC: MAC_TRIES consecutive MAC failures lock the card for good (9303)
        self.state.mac_failures += 1
        if self.state.mac_failures >= MAC_TRIES:
            self.state.locked = True
            raise Refuse(SW_LOCKED)
        raise Refuse(SW_MAC)

    def take_challenge(self) -> bytes:
        """The pending GET CHALLENGE value, consumed (6985 if none)."""
        challenge = self.session.challenge
        if challenge is None:
            raise Refuse(SW_CONDITIONS)
        self.session.challenge = None
        return challenge

    # ---- file system (subclasses supply contents) ----------------------------------------------------
    def read_file(self, fid: int) -> bytes:
        raise Refuse(SW_NOT_FOUND)

    def read_records(self, fid: int) -> list[bytes]:
        raise Refuse(SW_NOT_FOUND)

    def write_file(self, fid: int, content: bytes) -> None:
        raise Refuse(SW_SECURITY)

    def write_records(self, fid: int, records: list[bytes]) -> None:
        raise Refuse(SW_SECURITY)

    def _check_write(self, spec: FileSpec) -> None:
        if spec.write != WRITE_BUREAU or not self.session.bureau:
            raise Refuse(SW_SECURITY)

    def _current(self) -> FileSpec:
        if self.session.ef is None:
            raise Refuse(SW_CONDITIONS)
        return self.FILES[self.session.ef]

    def _sfi(self, sfi: int) -> FileSpec:
        spec = self._by_sfi.get(sfi)
        if spec is None:
            raise Refuse(SW_NOT_FOUND)
        return spec

    def _binary_target(self, cmd) -> tuple[FileSpec, int]:
        if cmd.p1 & 0x80:
            if cmd.p1 & 0x60:
                raise Refuse(SW_BAD_DATA)
            spec, offset = self._sfi(cmd.p1 & 0x1F), cmd.p2
        else:
            spec, offset = self._current(), cmd.p1 << 8 | cmd.p2
        if spec.records:
            raise Refuse(SW_CONDITIONS)
        return spec, offset

    def _record_target(self, cmd) -> FileSpec:
        if cmd.p2 & 0x07 != 0x04 or cmd.p1 == 0:
            raise Refuse(SW_BAD_DATA)
        spec = self._current() if cmd.p2 >> 3 == 0 else self._sfi(cmd.p2 >> 3)
        if not spec.records:
            raise Refuse(SW_CONDITIONS)
        return spec

    # ---- ISO commands -------------------------------------------------------------------------------
    def _select(self, cmd) -> None:
        if cmd.p2 not in (0x00, 0x0C):
            raise Refuse(SW_BAD_DATA)
        if cmd.p1 == 0x04:
            if cmd.data != self.DF_NAME:
                raise Refuse(SW_NOT_FOUND)
            self.session.ef = None
            return
        if cmd.p1 not in (0x00, 0x02):
            raise Refuse(SW_BAD_DATA)
        fid = int.from_bytes(self.need_len(cmd, 2), "big")
        if fid not in self.FILES:
            raise Refuse(SW_NOT_FOUND)
        self.session.ef = fid

    def _read_binary(self, cmd) -> bytes:
        if cmd.data:
            raise Refuse(SW_WRONG_LENGTH)
        spec, offset = self._binary_target(cmd)
        content = self.read_file(spec.fid)
        if offset > len(content):
            raise Refuse(SW_BAD_DATA)
        self.session.ef = spec.fid
        return content[offset:offset + (256 if cmd.le is None else cmd.le)]

    def _update_binary(self, cmd) -> None:
        spec, offset = self._binary_target(cmd)
        if not cmd.data:
            raise Refuse(SW_WRONG_LENGTH)
        self._check_write(spec)
        content = self.read_file(spec.fid)
        if offset + len(cmd.data) > len(content):
            raise Refuse(SW_WRONG_LENGTH)
        new = content[:offset] + cmd.data + content[offset + len(cmd.data):]
        self.parse(spec.layout, new)
        self.session.ef = spec.fid
        self.write_file(spec.fid, new)

    def _read_record(self, cmd) -> bytes:
        if cmd.data:
            raise Refuse(SW_WRONG_LENGTH)
        spec = self._record_target(cmd)
        records = self.read_records(spec.fid)
        if cmd.p1 > len(records):
            raise Refuse(SW_NOT_FOUND)
        self.session.ef = spec.fid
        return records[cmd.p1 - 1]

    def _update_record(self, cmd) -> None:
        spec = self._record_target(cmd)
        self._check_write(spec)
        if len(cmd.data) != spec.size:
            raise Refuse(SW_WRONG_LENGTH)
        self.parse(spec.layout, cmd.data)
        records = list(self.read_records(spec.fid))
        n = cmd.p1
        if n <= len(records):
            records[n - 1] = bytes(cmd.data)
        elif n == len(records) + 1:
            if len(records) >= spec.records:
                raise Refuse(SW_CONDITIONS)
            records.append(bytes(cmd.data))
        else:
            raise Refuse(SW_NOT_FOUND)
        self.session.ef = spec.fid
        self.write_records(spec.fid, records)

    def _get_challenge(self, cmd) -> bytes:
        self.need_p1p2(cmd)
        if cmd.data or cmd.le != apdu_layouts.CHALLENGE_LEN:
            raise Refuse(SW_WRONG_LENGTH)
        self.session.challenge = bytes(self.rng(apdu_layouts.CHALLENGE_LEN))
        return self.session.challenge

    def _get_response(self, cmd) -> bytes:
        self.need_p1p2(cmd)
        if cmd.data:
            raise Refuse(SW_WRONG_LENGTH)
        if not self.session.pending:
            raise Refuse(SW_CONDITIONS)
        n = 256 if cmd.le is None else cmd.le
        out, rest = self.session.pending[:n], self.session.pending[n:]
        self.session.pending = rest
        if rest:  # more to come: the data so far with 61xx
            return out, 0x6100 | (len(rest) & 0xFF)
        return out
