"""The till's request handler: one decoded request in, one status and reply payload out.  No I/O here:
the Board's RTC, cards, flash and nvram are reached through the HAL objects it is given (fiscal.py), and
the link server (server.py) moves the bytes.

Dispatch order (docs/PROTOCOL.md, "Commands"):
  0. the first request after boot (any)       -> the boot's back-fill of missed days runs first,
                                                 inside this request, so it sends keep-alives
  1. unknown command code                     -> LINK_UNKNOWN_COMMAND
  2. mutating command with request id 0       -> LINK_RID_MISSING
  3. the last executed request id again       -> the remembered reply (same command and payload),
                                                 else LINK_RID_REUSED; nothing runs
  4. mutating, id below the last executed one -> LINK_RID_STALE; nothing runs (ids compare as
     (unsigned 32-bit)                           unsigned 32-bit integers: request ids strictly increase)
  5. payload does not parse                   -> LINK_BAD_PAYLOAD
  6. the command's handler                    -> its status and reply
A refused request changes nothing and is not remembered (fiscal.py checks before it writes).  A
request that took effect is remembered; one that left no tagged record in fiscal memory (DAILY_CLOSE
with no day to close, SET_TIME before INITIALIZE) is remembered in nvram instead, so the last executed
id survives a reboot whatever the request was.
"""

from . import codes, layouts, schema, version
from .cards import CardError
from .fiscal import Fiscal, Refused, request_digest
from .printout import render

_CAPS = (1 << codes.CAP_RETURN_INVOICE | 1 << codes.CAP_VOID_INVOICE | 1 << codes.CAP_MANAGEMENT_CARD
         | 1 << codes.CAP_PRINTER | 1 << codes.CAP_JOURNAL_READOUT)


class Till:
    def __init__(self, board):
        self.board = board
        ident = board.identity
        self.machine_no = ident.get("machine_no", "0" * 16)
        self.model = ident.get("model", version.MODEL)
        self.capabilities = _CAPS | ident.get("capabilities", 0)
        self.fiscal = Fiscal(board)
        self.fiscal.defer_boot_work()  # the back-fill is done by the first request (dispatch step 0)
        self.fiscal.start()
        if self.fiscal.last_req is None:
            self.fiscal.load_untagged_request()  # e.g. a till not initialized yet: only nvram knows
        f = self.fiscal
        self._handlers = {
            codes.CMD_GET_INFO: lambda req, rid, dg: self._info(),
            codes.CMD_GET_STATUS: lambda req, rid, dg: self._status(),
            codes.CMD_SET_TIME: f.set_time,
            codes.CMD_INITIALIZE: f.initialize,
            codes.CMD_LOAD_ROLL: f.load_roll,
            codes.CMD_ISSUE_INVOICE: self._issue,
            codes.CMD_GET_DOCUMENT: self._document,
            codes.CMD_DAILY_CLOSE: lambda req, rid, dg: f.daily_close(rid, dg),
            codes.CMD_DECLARE: f.declare,
            codes.CMD_CLEAR_UNLOCK: f.clear_unlock,
            codes.CMD_READ_JOURNAL: lambda req, rid, dg: f.read_journal(req),
            codes.CMD_INSPECT: lambda req, rid, dg: f.inspect(rid, dg),
            codes.CMD_REPORT: lambda req, rid, dg: f.report(req),
        }

    def handle(self, command, rid, payload, out, off):
        """Execute one request; write the reply payload into `out` at `off`.  Returns (status, end)."""
        if self.fiscal.boot_pending:
            try:
                self.fiscal.finish_boot()
            except Exception:  # a HAL fault: boot went on without the back-fill, as it always did
                pass
        cmd = layouts.COMMANDS.get(command)
        if cmd is None:
            return codes.E_LINK_UNKNOWN_COMMAND, off
        mutating = command in codes.MUTATING
        digest = 0
        if mutating:
            if rid == 0:  # R-EXACTLY-ONCE: every mutating request carries an id
                return codes.E_LINK_RID_MISSING, off
            digest = request_digest(command, payload)
            self.fiscal.reconcile()
            self.fiscal.tagged = False
            last = self.fiscal.last_req
            if last is not None:
                if last[0] == rid:
                    if last[1] != digest or last[2] != command:
                        return codes.E_LINK_RID_REUSED, off
                    n = len(last[3])
                    out[off:off + n] = last[3]
                    return codes.E_OK, off + n
                if rid < last[0]:  # R-EXACTLY-ONCE; Python ints: rid and last[0] are both 0..0xFFFFFFFF, unsigned
                    return codes.E_LINK_RID_STALE, off
        if not payload and (command == codes.CMD_LOAD_ROLL or command == codes.CMD_CLEAR_UNLOCK):
            payload = b"\x00"  # protocol 1.0 hosts send no flags byte: flags 0
        try:
            request = schema.decode(cmd[0], payload)
        except (ValueError, UnicodeError):
            return codes.E_LINK_BAD_PAYLOAD, off
        try:
            reply = self._handlers[command](request, rid, digest)
        except Refused as e:
            return e.code, off
        except CardError as e:
            self.fiscal.session = False  # re-open (and recover, if a step was cut short) before next use
            return e.code, off
        except Exception:  # a HAL fault or a bug: answer, keep serving; boot recovery mends the state
            return codes.E_LINK_DEVICE_FAULT, off
        try:
            end = schema.encode_into(cmd[1], reply, out, off)
        except IndexError:
            return codes.E_LINK_REPLY_TOO_LONG, off
        if mutating:
            self.fiscal.remember_request(rid, digest, command, bytes(out[off:end]))
        return codes.E_OK, end

    # ---- handlers that need the device's own data -------------------------------------------------
    def _info(self):
        return {
            "model": self.model,
            "machine_no": self.machine_no,
            "fw_version": version.FW_VERSION,
            "fw_hash": version.firmware_hash(),
            "protocol_version": codes.PROTOCOL_VERSION,
            "capabilities": self.capabilities,
            "max_payload": codes.MAX_PAYLOAD,
        }

    def _status(self):
        f = self.fiscal
        date, time = f.now()
        c = f.controls
        roll = f.roll
        dmg = f.damage_info()
        return {
            "state": codes.STATE_IN_SERVICE if f.initialized() else codes.STATE_NEW,
            "date": date,
            "time": time,
            "lock_reasons": f.lock_mask(),
            "warnings": f.warnings(),
            "deadline": c["deadline"] if c else 0,
            "days_to_deadline": f.days_to_deadline(),
            "single_limit": c["single_limit"] if c else 0,
            "amount_left": max(0, c["cumulative_limit"] - f.cum_normal) if c else 0,
            "return_left": max(0, c["return_limit"] - f.cum_return) if c else 0,
            "roll_code": roll["code"] if roll else "",
            "roll_next": roll["next"] if roll else 0,
            "roll_end": roll["end"] if roll else 0,
            "invoices_left": f.invoices_left(),
            "journal_permille": f.journal_permille(),
            "last_number": f.last_number,
            "last_declared_end": f.declared_end,
            "last_rid": f.last_req[0] if f.last_req is not None else 0,
            "damage_kind": dmg[0],
            "damage_sector": dmg[1],
            "damage_offset": dmg[2],
            "damage_index": dmg[3],
        }

    def _issue(self, req, rid, digest):
        rec = self.fiscal.issue(req, rid, digest)
        printer = self.board.printer
        if printer is not None:
            f = self.fiscal
            ident = {"taxpayer_name": f.init["taxpayer_name"], "taxpayer_no": f.init["taxpayer_no"],
                     "machine_no": self.machine_no}
            try:
                for line in render(rec, req, ident, f.non_fiscal):
                    printer.write(line.encode("utf-8") + b"\n")
            except OSError:
                pass  # paper out or printer fault: the invoice stands; GET_DOCUMENT reprints
        return rec

    def _document(self, req, rid, digest):
        if self.fiscal.jn is None:
            raise Refused(codes.E_FM_DAMAGED)
        rec = self.fiscal.find_invoice(req["number"])
        if rec is None:
            raise Refused(codes.E_INPUT_NOT_FOUND)
        return rec
