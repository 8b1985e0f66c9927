"""TillClient: the host end of the link, over anything pyserial opens (pty paths, /dev/tty*, loop://,
socket://, rfc2217://).

    with TillClient("/dev/pts/7") as till:
        status, info = till.call("GET_INFO")          # status word and the parsed reply (None if not OK)
        info = till.call_ok("GET_INFO")               # the reply, or StatusError explaining the status

Request ids.  Every call takes the next RID of a counter that skips 0.  The counter starts at a random
value: the till keeps the RID of its last mutating request across reboots, and a host that restarted at
1 could repeat it, getting a stored reply replayed instead of its new request executed.  A call that
gets no reply is sent again with the *same* RID, up to `retries` times; the till's exactly-once rule
makes that safe for mutating commands (protocol/commands.py).  A late reply to an earlier send of the
same call is accepted.

What a failed call means.  Frames that are not the awaited reply (another RID or command, a request
echoed by a loopback line) are skipped, and so are bytes that form no valid frame; if no awaited reply
arrives in time the error says what was seen instead:
    nothing at all                   NoReplyError     (no till on the port, wrong baud, unplugged)
    whole frames failing their CRC   BadCrcError      (line noise, a bad cable)
    other bytes or other replies     WrongDeviceError (something else is on this port)
A port that cannot be opened is a PortError naming it.  All are LinkError.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

import construct as c
import serial

from protocol import frame
from protocol.commands import BY_CODE, BY_NAME, Command
from protocol.errors import BY_NAME as ERRORS
from protocol.errors import describe
from protocol.status import REQUEST_FLAGS

OK = ERRORS["OK"].code
POLL_S = 0.02  # pyserial read timeout: how often the deadline is checked


class LinkError(Exception):
    """Talking to the till failed; str() is a one-line explanation for a person."""


class PortError(LinkError):
    pass


class NoReplyError(LinkError):
    pass


class WrongDeviceError(LinkError):
    pass


class BadCrcError(LinkError):
    pass


class StatusError(LinkError):
    """The till answered with a status other than OK."""

    def __init__(self, command: str, status: int) -> None:
        super().__init__("%s refused: %s" % (command, describe(status)))
        self.command = command
        self.status = status


def resolve(command: str | int) -> tuple[Command | None, int, str]:
    """(table row, code, name) for a name (any case) or a code; the row is None for a code outside the table."""
    if isinstance(command, str):
        try:
            cmd = BY_NAME[command.upper()]
        except KeyError:
            raise ValueError("unknown command %r; known: %s" % (command, ", ".join(BY_NAME))) from None
        return cmd, cmd.code, cmd.name
    row = BY_CODE.get(command)
    return row, command, row.name if row else "command 0x%02X" % command


def request_flags(*, confirm_mac: bool = False) -> int:
    """The flags byte of LOAD_ROLL and CLEAR_UNLOCK (protocol.status.REQUEST_FLAGS)."""
    bits = {name: bit for bit, name in REQUEST_FLAGS.items()}
    return (1 << bits["CONFIRM_MAC"]) if confirm_mac else 0


class TillClient:
    def __init__(self, port: str, baudrate: int = 115200, timeout: float = 2.0, retries: int = 2,
                 first_rid: int | None = None) -> None:
        if retries < 0 or timeout <= 0:
            raise ValueError("retries must be >= 0 and timeout > 0")
        self.port_name = port
        self.timeout = timeout
        self.retries = retries
        self._rid = first_rid if first_rid is not None else secrets.randbits(32)
        try:
            self.port = serial.serial_for_url(port, baudrate=baudrate, timeout=POLL_S)
        except (serial.SerialException, OSError, ValueError) as e:
            raise PortError("cannot open %s: %s" % (port, _reason(e))) from None
        self.receiver = frame.FrameReceiver()

    def next_rid(self) -> int:
        self._rid = self._rid % 0xFFFFFFFF + 1  # 1..0xFFFFFFFF, never 0
        return self._rid

    def call(self, command: str | int, request: dict | None = None, *,
             payload: bytes | None = None) -> tuple[int, Any]:
        """Send one request and wait for its reply: (status, reply).

        The request payload is built from `request` with the command's request struct, or given raw as
        `payload` (for codes outside the table, or deliberately malformed requests).  The reply is the
        parsed reply struct when the status is OK, the raw payload for a code outside the table, and
        None otherwise.
        """
        cmd, code, name = resolve(command)
        if payload is None:
            if cmd is None:
                raise ValueError("%s is not in the command table: give the payload bytes" % name)
            payload = cmd.request.build(request or {})
        rid = self.next_rid()
        wire = frame.request(code, rid, payload)
        seen = _Seen(self.receiver)
        for _attempt in range(self.retries + 1):
            self._write(wire)
            got = self._await(code, rid, seen)
            if got is not None:
                return self._parse(cmd, name, got)
        raise seen.error(self.port_name, name, self.timeout, self.retries + 1)

    def call_ok(self, command: str | int, request: dict | None = None, **kw) -> Any:
        """Like call(), but a status other than OK raises StatusError with the status explained."""
        status, reply = self.call(command, request, **kw)
        if status != OK:
            raise StatusError(resolve(command)[2], status)
        return reply

    def load_roll(self, *, confirm_mac: bool = False) -> Any:
        """LOAD_ROLL; `confirm_mac` sets CONFIRM_MAC: hand the roll to a fiscal card with one MAC try
        left (docs/FIRMWARE.md, "MAC tries").  Only a person who has seen the warning should set it."""
        return self.call_ok("LOAD_ROLL", {"flags": request_flags(confirm_mac=confirm_mac)})

    def clear_unlock(self, *, confirm_mac: bool = False) -> Any:
        """CLEAR_UNLOCK; `confirm_mac` as for load_roll."""
        return self.call_ok("CLEAR_UNLOCK", {"flags": request_flags(confirm_mac=confirm_mac)})

    def _write(self, data: bytes) -> None:
        try:
            self.port.write(data)
            self.port.flush()
        except (serial.SerialException, OSError) as e:
            raise PortError("cannot write to %s: %s" % (self.port_name, _reason(e))) from None

    def _await(self, code: int, rid: int, seen: _Seen) -> dict | None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                data = self.port.read(self.port.in_waiting or 1)
            except (serial.SerialException, OSError) as e:
                raise PortError("cannot read from %s: %s" % (self.port_name, _reason(e))) from None
            if not data:
                continue
            seen.raw(data)
            for f in self.receiver.feed(data):
                if f["kind"] == frame.KIND_REPLY and f["command"] == code and f["rid"] == rid:
                    return f
                seen.other(f)
        seen.settle(self.receiver)
        return None

    @staticmethod
    def _parse(cmd: Command | None, name: str, f: dict) -> tuple[int, Any]:
        status, payload = f["status"], f["payload"]
        if cmd is None:
            return status, payload
        if status != OK:
            return status, None
        try:
            return status, cmd.reply.parse(payload)
        except c.ConstructError as e:
            raise WrongDeviceError("the reply to %s does not have its layout (%s); is this till speaking "
                                   "another protocol version?" % (name, e)) from None

    def close(self) -> None:
        self.port.close()

    def __enter__(self) -> TillClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Seen:
    """What arrived during one call instead of its reply, to explain a failure."""

    def __init__(self, receiver: frame.FrameReceiver) -> None:
        self.discarded_before = receiver.discarded
        self.bad_crc_before = receiver.bad_crc
        self.bytes = 0
        self.garbage = 0
        self.bad_crc = 0
        self.echoes = 0
        self.strangers = 0

    def raw(self, data: bytes) -> None:
        self.bytes += len(data)

    def settle(self, receiver: frame.FrameReceiver) -> None:
        self.garbage = receiver.discarded - self.discarded_before
        self.bad_crc = receiver.bad_crc - self.bad_crc_before

    def other(self, f: dict) -> None:
        if f["kind"] == frame.KIND_REQUEST:
            self.echoes += 1
        else:
            self.strangers += 1

    def error(self, port: str, name: str, timeout: float, tries: int) -> LinkError:
        waited = "%d tr%s of %g s" % (tries, "y" if tries == 1 else "ies", timeout)
        if not self.bytes:
            return NoReplyError("no reply from %s to %s after %s: is a till connected and powered, "
                                "at this baud rate?" % (port, name, waited))
        bad_crc = self.bad_crc
        if bad_crc and not self.strangers:
            return BadCrcError("%d frame(s) from %s failed their CRC check (%d bytes discarded) during %s: "
                               "line noise or a bad cable?" % (bad_crc, port, self.garbage, waited))
        parts = []
        if self.garbage:
            parts.append("%d bytes that are no valid frame" % self.garbage)
        if self.strangers:
            parts.append("%d reply frame(s) to other requests" % self.strangers)
        if self.echoes:
            parts.append("%d request frame(s), an echo of ours (a loopback?)" % self.echoes)
        return WrongDeviceError("no reply to %s from %s after %s, only %s: is this port a fiscal till, "
                                "at this baud rate?" % (name, port, waited, " and ".join(parts)))


def _reason(e: BaseException) -> str:
    """pyserial's message without its repetitions: 'No such file or directory', 'Connection refused'."""
    text = str(e.args[-1]) if e.args else str(e)
    if "Inappropriate ioctl" in text:
        return "not a serial port"
    text = re.sub(r"^[Cc]ould not open port [^ ]+: ", "", text)
    text = re.sub(r"\[Errno \d+\] ", "", text)
    return re.sub(r": '[^']*'$", "", text)
