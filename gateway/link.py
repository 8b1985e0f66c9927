"""TillClient: the host end of the link, over anything pyserial opens (pty paths, /dev/tty*, loop://,
socket://, rfc2217://).

    with TillClient("/dev/pts/7") as till:
        status, info = till.call("GET_INFO")          # status word and the parsed reply (None if not OK)
        info = till.call_ok("GET_INFO")               # the reply, or StatusError explaining the status

Request ids.  Every call takes the next RID of a counter that skips 0.  The till refuses a mutating
request whose RID is not above the last one it executed (LINK_RID_STALE, protocol/commands.py), and
keeps that id across reboots; so before its first mutating request the client resumes: it asks the till
for GET_INFO (machine number) and GET_STATUS (`last_rid`) and continues from
max(its stored counter, last_rid) + 1.  The counter is kept across restarts in a small state file per
till, `<rid_dir>/<machine_no>.rid` (decimal, replaced atomically before each mutating request is sent):
`rid_dir` defaults to $FISCAL_RID_DIR, else $XDG_STATE_HOME/fiscal-toolkit/request-ids, else
~/.local/state/fiscal-toolkit/request-ids; `rid_dir=False` keeps it in memory only.  A folder that
cannot be written is no error: the counter lives in memory and GET_STATUS still resumes it
(`rid_problem` says why).  A LINK_RID_STALE answer (another host moved the till's id on) makes the
client resume again and send the request once more with a fresh RID: a stale request changed nothing.
Ids do not wrap in practice: at 0xFFFFFFFF the till accepts no higher id, 136 years at one request a
second.  A call that gets no reply is sent again with the *same* RID, up to `retries` times; the till's
exactly-once rule makes that safe for mutating commands.  A late reply to an earlier send of the same
call is accepted.

Waiting.  `timeout` is the silence allowed: a keep-alive frame for the pending request (KIND 'K', same
COMMAND and RID, protocol/frame.py) restarts it, so long work on the till (a multi-year back-fill) is
waited for; `hang_guard` seconds (default 600) bound one attempt whatever arrives.  Keep-alives of any
other request are ignored.

What a failed call means.  Frames that are not the awaited reply (another RID or command, a request
echoed by a loopback line) are skipped, and so are bytes that form no valid frame; if no awaited reply
arrives in time the error says what was seen instead:
    nothing at all                   NoReplyError     (no till on the port, wrong baud, unplugged)
    whole frames failing their CRC   BadCrcError      (line noise, a bad cable)
    other bytes or other replies     WrongDeviceError (something else is on this port)
A port that cannot be opened is a PortError naming it.  All are LinkError.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

import construct as cs
import serial

from protocol import frame
from protocol.commands import BY_CODE, BY_NAME, Command
from protocol.errors import BY_NAME as ERRORS
from protocol.errors import describe
from protocol.fileio import write_atomic
from protocol.status import REQUEST_FLAGS

OK = ERRORS["OK"].code
RID_STALE = ERRORS["LINK_RID_STALE"].code
HANG_GUARD_S = 600.0  # one attempt never waits longer, keep-alives or not
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
                 first_rid: int | None = None, rid_dir: str | os.PathLike | bool | None = None,
                 hang_guard: float = HANG_GUARD_S) -> None:
        if retries < 0 or timeout <= 0:
            raise ValueError("retries must be >= 0 and timeout > 0")
        self.port_name = port
        self.timeout = timeout
        self.retries = retries
        self.hang_guard = max(hang_guard, timeout)
        # before resuming: a small random start, so two fresh clients differ, far below the top
        self._rid = first_rid if first_rid is not None else secrets.randbits(24)
        self.rid_dir = default_rid_dir() if rid_dir is None or rid_dir is True else (
            None if rid_dir is False else Path(rid_dir))
        self.rid_problem: str | None = None  # why the counter is not kept on disk, if it is not
        self.rid_file: Path | None = None
        self.resumed = False
        self.keepalives = 0  # keep-alive frames of our requests seen
        try:
            self.port = serial.serial_for_url(port, baudrate=baudrate, timeout=POLL_S)
        except (serial.SerialException, OSError, ValueError) as e:
            raise PortError("cannot open %s: %s" % (port, _reason(e))) from None
        self.receiver = frame.FrameReceiver()

    def next_rid(self) -> int:
        self._rid = self._rid % 0xFFFFFFFF + 1  # 1..0xFFFFFFFF, never 0
        return self._rid

    def resume(self) -> int:
        """Continue the request ids after the till's last executed one and this host's stored counter:
        GET_INFO names the till (its state file), GET_STATUS gives last_rid.  Returns the counter."""
        info = self.call_ok("GET_INFO")
        status = self.call_ok("GET_STATUS")
        if self.rid_dir is not None and self.rid_file is None:
            self.rid_file = self.rid_dir / ("%s.rid" % info.machine_no)
            stored = _read_counter(self.rid_file)
            if stored is not None:
                self._rid = max(self._rid, stored)
        self._rid = max(self._rid, status.last_rid)
        self.resumed = True
        return self._rid

    def _store_counter(self) -> None:
        if self.rid_file is None or self.rid_problem is not None:
            return
        try:
            self.rid_file.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.rid_file, b"%d\n" % self._rid, durable=False, mode=0o666,
                         tmp=self.rid_file.with_name(self.rid_file.name + ".%d.tmp" % os.getpid()))
        except OSError as e:
            self.rid_problem = "cannot keep the request-id counter in %s (%s); it is kept in memory and " \
                "resumed from the till" % (self.rid_file.parent, e.strerror or e)

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
        mutating = cmd is not None and cmd.mutating
        if mutating and not self.resumed:
            self.resume()
        for fresh in (False, True):
            got = self._send(code, name, payload, mutating)
            if not (mutating and got["status"] == RID_STALE) or fresh:
                break
            self.resume()  # another host moved the till's id on; nothing ran: once more, fresh id
        return self._parse(cmd, name, got)

    def _send(self, code: int, name: str, payload: bytes, mutating: bool) -> dict:
        rid = self.next_rid()
        if mutating:
            self._store_counter()  # before the frame leaves: a crash never reuses this id
        wire = frame.request(code, rid, payload)
        seen = _Seen(self.receiver)
        for _attempt in range(self.retries + 1):
            self._write(wire)
            got = self._await(code, rid, seen)
            if got is not None:
                return got
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
        start = time.monotonic()
        guard = start + self.hang_guard
        deadline = start + self.timeout
        while time.monotonic() < min(deadline, guard):
            try:
                data = self.port.read(self.port.in_waiting or 1)
            except (serial.SerialException, OSError) as e:
                raise PortError("cannot read from %s: %s" % (self.port_name, _reason(e))) from None
            if not data:
                continue
            seen.raw(data)
            for f in self.receiver.feed(data):
                if f["command"] == code and f["rid"] == rid:
                    if f["kind"] == frame.KIND_REPLY:
                        return f
                    if f["kind"] == frame.KIND_KEEPALIVE:
                        self.keepalives += 1
                        seen.keepalives += 1
                        deadline = time.monotonic() + self.timeout  # still working on it
                        continue
                if f["kind"] == frame.KIND_KEEPALIVE:
                    continue  # another request's: never a reply, and no sign of a wrong device
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
        except cs.ConstructError as e:
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
        self.keepalives = 0  # of the awaited request

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
        if self.keepalives and not (self.garbage or self.strangers or self.echoes or self.bad_crc):
            return NoReplyError("the till at %s sent %d keep-alive(s) for %s but no reply after %s "
                                "(silence after the last one, or the hang guard): is it stuck, or did it "
                                "lose power?" % (port, self.keepalives, name, waited))
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


def default_rid_dir() -> Path:
    """Where TillClient keeps its request-id counters unless told: $FISCAL_RID_DIR, else
    $XDG_STATE_HOME/fiscal-toolkit/request-ids, else ~/.local/state/fiscal-toolkit/request-ids."""
    env = os.environ.get("FISCAL_RID_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "fiscal-toolkit" / "request-ids"


def _read_counter(path: Path) -> int | None:
    try:
        value = int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError, UnicodeError):
        return None  # missing, unreadable or damaged: GET_STATUS.last_rid still resumes the counter
    return value if 0 <= value <= 0xFFFFFFFF else None


def _reason(e: BaseException) -> str:
    """pyserial's message without its repetitions: 'No such file or directory', 'Connection refused'."""
    text = str(e.args[-1]) if e.args else str(e)
    if "Inappropriate ioctl" in text:
        return "not a serial port"
    text = re.sub(r"^[Cc]ould not open port [^ ]+: ", "", text)
    text = re.sub(r"\[Errno \d+\] ", "", text)
    return re.sub(r": '[^']*'$", "", text)
