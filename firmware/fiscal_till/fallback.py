"""The link's last resort: what `main.py` serves when the fiscal core (`device.Till`) cannot start.

`Fiscal.start()` never raises for anything the flash, nvram or cards hold; this covers the rest (a
firmware bug, memory exhausted while mounting).  The till stays on the link and says what it can:

    GET_INFO      answered as usual
    GET_STATUS    state NEW, lock FM_DAMAGED, damage_kind MEDIA if no journal mounts, else OTHER
    READ_JOURNAL  the read-out stream of a journal mounted read-only, if one mounts
    anything else LINK_DEVICE_FAULT: nothing runs, nothing is written
"""

from . import codes, layouts, schema, version


class FallbackTill:  # R-BOOT-ALWAYS: what answers when the fiscal core cannot even start
    def __init__(self, board, reason=None):
        self.board = board
        self.reason = reason  # the exception that stopped the fiscal core (for a debugger; never sent)
        ident = board.identity or {}
        self.machine_no = ident.get("machine_no", "0" * 16)
        self.model = ident.get("model", version.MODEL)
        self.jn = None
        self._tried = False
        self._rj = None

    def _journal(self):
        if not self._tried:
            self._tried = True
            try:
                from .journal import Journal
                self.jn = Journal(self.board.flash, None)
            except Exception:
                self.jn = None
        return self.jn

    def _reply(self, command, req):
        if command == codes.CMD_GET_INFO:
            return {"model": self.model, "machine_no": self.machine_no, "fw_version": version.FW_VERSION,
                    "fw_hash": version.firmware_hash(), "protocol_version": codes.PROTOCOL_VERSION,
                    "capabilities": 1 << codes.CAP_JOURNAL_READOUT, "max_payload": codes.MAX_PAYLOAD}
        if command == codes.CMD_GET_STATUS:
            kind = codes.DAMAGE_MEDIA if self._journal() is None else codes.DAMAGE_OTHER
            return {"state": codes.STATE_NEW, "date": 0, "time": 0,
                    "lock_reasons": 1 << codes.LOCK_FM_DAMAGED | 1 << codes.LOCK_NOT_INITIALIZED,
                    "warnings": 0, "deadline": 0, "days_to_deadline": codes.NO_DEADLINE_DAYS,
                    "single_limit": 0, "amount_left": 0, "return_left": 0, "roll_code": "", "roll_next": 0,
                    "roll_end": 0, "invoices_left": 0, "journal_permille": 0, "last_number": 0,
                    "last_declared_end": 0, "last_rid": 0, "damage_kind": kind, "damage_sector": 0xFFFF,
                    "damage_offset": 0xFFFFFFFF, "damage_index": 0xFFFFFFFF}
        if command == codes.CMD_READ_JOURNAL:
            jn = self._journal()
            if jn is None:
                return codes.E_FM_DAMAGED
            total = jn.stream_length()
            off = req["offset"]
            if off > total:
                return codes.E_INPUT_BAD_RANGE
            n = min(req["length"], codes.READ_JOURNAL_MAX, total - off)
            if self._rj is None:
                self._rj = bytearray(codes.READ_JOURNAL_MAX)
            return {"offset": off, "total": total, "data": jn.read_stream(off, n, self._rj)}
        return codes.E_LINK_DEVICE_FAULT

    def handle(self, command, rid, payload, out, off):
        """Same contract as `device.Till.handle`: (status, end of the reply payload in `out`)."""
        cmd = layouts.COMMANDS.get(command)
        if cmd is None:
            return codes.E_LINK_UNKNOWN_COMMAND, off
        try:
            req = schema.decode(cmd[0], payload) if command == codes.CMD_READ_JOURNAL else None
            reply = self._reply(command, req)
            if isinstance(reply, int):
                return reply, off
            return codes.E_OK, schema.encode_into(cmd[1], reply, out, off)
        except Exception:
            return codes.E_LINK_DEVICE_FAULT, off


def make_till(board):
    """`device.Till(board)`, or the fallback if the fiscal core cannot start."""
    try:
        from .device import Till
        return Till(board)
    except Exception as e:
        return FallbackTill(board, e)
