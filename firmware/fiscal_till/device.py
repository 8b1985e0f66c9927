"""The till's request handler: one decoded request in, one status and reply payload out.  No I/O here:
the Board's RTC, cards and flash are reached through the HAL objects it is given, and the link server
(server.py) moves the bytes.

Dispatch order (docs/PROTOCOL.md, "Commands"):
  1. unknown command code                  -> LINK_UNKNOWN_COMMAND
  2. mutating command with request id 0    -> LINK_RID_MISSING
  3. payload does not parse                -> LINK_BAD_PAYLOAD
  4. command without behaviour yet         -> LINK_NOT_SUPPORTED
  5. the command's handler                 -> its status and reply
A failing request never changes state: handlers check everything before they write anything.
"""

from . import codes, layouts, schema, version
from .clock import now

_CAPS = (1 << codes.CAP_JOURNAL_READOUT)


class Till:
    def __init__(self, board):
        self.board = board
        ident = board.identity
        self.machine_no = ident.get("machine_no", "0" * 16)
        self.model = ident.get("model", version.MODEL)
        self.capabilities = _CAPS | ident.get("capabilities", 0)
        self._handlers = {
            codes.CMD_GET_INFO: self._get_info,
            codes.CMD_GET_STATUS: self._get_status,
        }

    def handle(self, command, rid, payload, out, off):
        """Execute one request; write the reply payload into `out` at `off`.  Returns (status, end)."""
        cmd = layouts.COMMANDS.get(command)
        if cmd is None:
            return codes.E_LINK_UNKNOWN_COMMAND, off
        if rid == 0 and command in codes.MUTATING:
            return codes.E_LINK_RID_MISSING, off
        try:
            request = schema.decode(cmd[0], payload)
        except ValueError:
            return codes.E_LINK_BAD_PAYLOAD, off
        handler = self._handlers.get(command)
        if handler is None:
            return codes.E_LINK_NOT_SUPPORTED, off
        status, reply = handler(request)
        if status != codes.E_OK:
            return status, off
        try:
            return codes.E_OK, schema.encode_into(cmd[1], reply, out, off)
        except IndexError:
            return codes.E_LINK_REPLY_TOO_LONG, off

    # ---- handlers: request dict -> (status, reply dict) -------------------------------------------
    def _get_info(self, req):
        return codes.E_OK, {
            "model": self.model,
            "machine_no": self.machine_no,
            "fw_version": version.FW_VERSION,
            "fw_hash": version.firmware_hash(),
            "protocol_version": codes.PROTOCOL_VERSION,
            "capabilities": self.capabilities,
            "max_payload": codes.MAX_PAYLOAD,
        }

    def _get_status(self, req):
        date, time = now(self.board.rtc)
        return codes.E_OK, {
            "state": codes.STATE_NEW,
            "date": date,
            "time": time,
            "lock_reasons": 1 << codes.LOCK_NOT_INITIALIZED,
            "warnings": 0,
            "deadline": 0,
            "days_to_deadline": codes.NO_DEADLINE_DAYS,
            "single_limit": 0,
            "amount_left": 0,
            "return_left": 0,
            "roll_code": "",
            "roll_next": 0,
            "roll_end": 0,
            "invoices_left": 0,
            "journal_permille": 0,
            "last_number": 0,
            "last_declared_end": 0,
        }
