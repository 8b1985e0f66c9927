# mypy: disable-error-code="attr-defined, has-type"
"""Recovery: finish or forget an operation a power cut (or a pulled card) interrupted (R-POWER-SAFE).

A multi-step operation (card step + journal step) first writes its *intent* to nvram; `recover()` at boot
finishes or forgets it by looking at what the card and the journal show (docs/FIRMWARE.md, "Recovery"):

    ISSUE_INVOICE  card's last number == intent's, journal lacks it -> append the record with the card's
                   last 税控码; else the card never issued it -> forget.  The roll's last invoice in the
                   journal without the roll's ROLL_USAGE -> append ROLL_USAGE
    DAILY_CLOSE    journal's last DAILY before the intent's last day (or the card's closed day) -> sign
                   those days again (the card returns the same signature) and append them, tagged
    DECLARE        card EF04 SIGNED for a period the journal lacks -> rebuild the response from EF04,
                   DATA_COLLECT to the user card if one is in the slot, append the record
    CLEAR_UNLOCK   card EF01 sequence newer than the journal's -> append the record and EV_UNLOCKED;
                   the record without its EV_UNLOCKED -> append the event
    SET_TIME       no EV_CLOCK_SET of the request -> the RTC forward to the request's time if behind it,
                   append the event with the old date the intent kept
    LOAD_ROLL      card EF05 roll not in the journal -> append the roll-load record; roll taken from the
                   user card but not loaded -> load it from the user card's EF07 when it is inserted
    INITIALIZE     card registered, PIN in nvram, no INIT record -> finished by the host's retry
    (INSPECT has no intent: its one event carries the request tag, and a retry writes no second one.)

Exactly once across a reboot (R-EXACTLY-ONCE): the last executed request's reply is rebuilt from the
newest record a request tagged; a request that wrote no tagged record is kept in nvram.  `Recovery` is a
part of `Fiscal` (fiscal.py), like boot.py's `Boot`.
"""

import struct

from . import cards, codes, layouts
from .records import decode, encode, NV_INTENT, NV_REQUEST


class Recovery:
    def recover(self):  # R-POWER-SAFE
        raw = self.nv.get(NV_INTENT)
        if raw is None:
            return
        if not self.card_ok():
            return  # keep it until the card is back
        cmd = raw[0]
        rid, digest = struct.unpack_from(">II", raw, 1)
        tag = {"rid": rid, "digest": digest}
        today = self.card_today
        if cmd == codes.CMD_ISSUE_INVOICE:
            rec = decode(layouts.INVOICE_RECORD, raw[9:])
            if today["last_number"] == rec["number"] and self.last_number != rec["number"] and \
                    self.roll is not None and rec["code"] == self.roll["code"]:
                rec["fiscal_code"] = today["last_fiscal_code"]
                self._append_invoice(rec, rec["lines"])  # and the roll's usage, if it was the last
                self.cum_normal = today["cumulative_normal"]  # the card counted it already
                self.cum_return = today["cumulative_return"]
                self.recovered.append("ISSUE_INVOICE")
            elif self.last_number == rec["number"] and self._usage_unrecorded(rec):
                self._record_usage(rec["date"], rec["number"])  # the roll's last invoice stands alone
                self.recovered.append("ROLL_USAGE")
        elif cmd == codes.CMD_INITIALIZE:
            pass  # finished by the host's retry
        elif cmd == codes.CMD_DECLARE:
            d = self.card_decl
            if d["status"] == cards.DECL_SIGNED and d["end"] > self.declared_end:
                self._finish_declaration(d, tag)
                self.recovered.append("DECLARE")
        elif cmd == codes.CMD_CLEAR_UNLOCK:
            if self.card_ctl["sequence"] > self.clear_seq:
                self._record_clear(tag)
                self.recovered.append("CLEAR_UNLOCK")
            elif self._unlock_event_missing():
                self._event(codes.EV_UNLOCKED, self.card_ctl["period_end"])
                self.recovered.append("UNLOCKED")
        elif cmd == codes.CMD_SET_TIME:
            if not self._newest_tagged_is(codes.EV_CLOCK_SET, rid, digest):
                self._finish_set_time(raw, tag)
                self.recovered.append("SET_TIME")
        elif cmd == codes.CMD_LOAD_ROLL:
            if self._roll_unrecorded():
                self._record_roll(tag)
                self.recovered.append("LOAD_ROLL")
        if cmd == codes.CMD_DAILY_CLOSE:
            # the request closed every day through the date in its intent: finish the ones it did not
            # reach (the card's closed day may be later than the journal's: the same signatures again)
            through = max(self.card_today["closed_date"], struct.unpack_from(">I", raw, 9)[0]
                          if len(raw) >= 13 else 0)
            if through > self.closed:
                self._close_days(through, rid, digest)
                self.recovered.append("DAILY_CLOSE")
        self.nv.delete(NV_INTENT)

    def _usage_unrecorded(self, rec):
        """The invoice `rec` (in the journal) used up the loaded roll and no ROLL_USAGE record of that
        roll follows its ROLL_LOAD record."""
        r = self.roll
        if r is None or rec["code"] != r["code"] or rec["number"] != r["end"]:
            return False
        for idx, t, body in self.jn.fiscal_records_reverse():
            if t == codes.REC_ROLL_LOAD:
                return True
            if t == codes.REC_ROLL_USAGE:
                u = decode(layouts.ROLL_USAGE_RECORD, body)
                if u["code"] == r["code"] and u["start"] == r["start"]:
                    return False
        return True

    def _unlock_event_missing(self):
        """The newest CLEAR_UNLOCK record is not followed by its EV_UNLOCKED event."""
        for idx, t, body in self.jn.fiscal_records_reverse():
            if t == codes.REC_CLEAR_UNLOCK:
                return True
            if t == codes.REC_EVENT and decode(layouts.EVENT_RECORD, body)["event"] == codes.EV_UNLOCKED:
                return False
        return False  # no clear-unlock recorded at all: nothing to complete

    def _newest_tagged_is(self, event, rid, digest):
        """The newest record a request wrote is this request's `event` event."""
        for idx, t, body in self.jn.fiscal_records_reverse():
            if t not in layouts.RECORDS:
                continue
            rec = decode(layouts.RECORDS[t], body)
            if "request" not in rec or not rec["request"]["rid"]:
                continue  # power-on events, back-filled days
            return t == codes.REC_EVENT and rec["event"] == event and \
                rec["request"]["rid"] == rid and rec["request"]["digest"] == digest
        return False

    def _finish_set_time(self, raw, tag):
        """Recovery: SET_TIME was cut before its event record.  The clock never goes backwards, so an
        RTC behind the request's time was not set yet: set it; then record the event with the date the
        clock showed before (kept in the intent)."""
        date, time, old_date = struct.unpack_from(">III", raw, 9)
        if self.now() < (date, time):
            self._set_rtc(date, time)
        self._append(codes.REC_EVENT, layouts.EVENT_RECORD,
                     {"request": tag, "date": date, "time": time, "event": codes.EV_CLOCK_SET,
                      "arg": old_date})

    def _intent(self, cmd, rid, digest, extra=b""):  # R-POWER-SAFE: before the first write
        self.nv.put(NV_INTENT, bytes([cmd]) + struct.pack(">II", rid, digest) + extra)

    def _done(self):
        self.nv.delete(NV_INTENT)

    def _load_last_request(self):  # R-EXACTLY-ONCE
        """Exactly-once across a reboot: find the newest record a request made (its tag has a rid) and
        rebuild that request's reply.  Fiscal records carry their index; an invoice is newer than the
        newest tagged fiscal record when its ordinal is at least the number of invoices before it."""
        jn = self.jn
        self.last_req = None
        counts = jn.counters()
        n_fiscal = 0
        for t in counts:
            if t != codes.REC_INVOICE:
                n_fiscal += counts[t]
        tagged = None
        daily_reply = None
        k = -1
        for idx, t, body in jn.fiscal_records_reverse():
            k += 1
            self.busy()
            if t not in layouts.RECORDS:
                continue
            rec = decode(layouts.RECORDS[t], body)
            rid = rec["request"]["rid"] if "request" in rec else 0
            if tagged is None:
                if rid and self._remember(t, rec, None):
                    tagged = (idx, k, rid)
                    if t != codes.REC_DAILY:
                        break
                    daily_reply = self.last_req
            elif t == codes.REC_DAILY and rid == tagged[2]:
                self._remember(t, rec, daily_reply)  # an earlier day of the same DAILY_CLOSE
                daily_reply = self.last_req
            else:
                break
        inv_before = -1 if tagged is None else tagged[0] + 1 - (n_fiscal - tagged[1])
        for ordinal, body in jn.invoices_reverse():
            if ordinal >= inv_before:
                self._remember(codes.REC_INVOICE, decode(layouts.INVOICE_RECORD, body), None)
            break
        self.load_untagged_request()

    def load_untagged_request(self):
        """A request that took effect without writing a tagged record (DAILY_CLOSE with no day to
        close, SET_TIME before INITIALIZE) is kept in nvram; it is the last one if its id is the larger
        (ids strictly increase, compared unsigned)."""
        raw = self.nv.get(NV_REQUEST)
        if raw is None or len(raw) < 9:
            return
        rid, digest = struct.unpack_from(">II", raw, 0)
        if self.last_req is None or rid > self.last_req[0]:
            self.last_req = (rid, digest, raw[8], bytes(raw[9:]))

    def remember_request(self, rid, digest, command, reply):
        """After a mutating request took effect (device.py): it is the last executed one.  Its records
        carry its tag; when it wrote none, nvram keeps it, so the last id survives a reboot."""
        self.last_req = (rid, digest, command, reply)
        if not self.tagged:
            try:
                self.nv.put(NV_REQUEST, struct.pack(">IIB", rid, digest, command) + reply)
            except OSError:
                pass  # nvram fault: the request stands; its id is kept in RAM until the next reboot
        self.tagged = False

    def _remember(self, t, rec, daily_reply):
        """Rebuild the reply of the request that wrote `rec` (exactly-once across a reboot)."""
        rid = rec["request"]["rid"]
        if not rid:
            return False
        digest = rec["request"]["digest"]
        if t == codes.REC_INVOICE:
            cmd, reply = codes.CMD_ISSUE_INVOICE, rec
        elif t == codes.REC_DECLARATION:
            cmd, reply = codes.CMD_DECLARE, rec
        elif t == codes.REC_CLEAR_UNLOCK:
            cmd = codes.CMD_CLEAR_UNLOCK
            reply = {"period_end": rec["period_end"], "controls": rec["controls"]}
        elif t == codes.REC_ROLL_LOAD:
            cmd = codes.CMD_LOAD_ROLL
            reply = {"code": rec["code"], "start": rec["start"], "end": rec["end"]}
        elif t == codes.REC_INIT:
            cmd = codes.CMD_INITIALIZE
            reply = {"machine_no": rec["machine_no"], "fiscal_card_no": rec["fiscal_card_no"],
                     "taxpayer_no": rec["taxpayer_no"], "record": 0}
        elif t == codes.REC_DAILY:
            cmd = codes.CMD_DAILY_CLOSE
            if daily_reply is not None:  # an older day of the same request: extend backwards
                old = decode(layouts.DAILY_CLOSE_REPLY, daily_reply[3])
                reply = {"first": rec["date"], "last": old["last"], "count": old["count"] + 1}
            else:
                reply = {"first": rec["date"], "last": rec["date"], "count": 1}
        elif t == codes.REC_EVENT and rec["event"] == codes.EV_CLOCK_SET:
            cmd, reply = codes.CMD_SET_TIME, {}
        else:
            return False
        self.last_req = (rid, digest, cmd, encode(layouts.COMMANDS[cmd][1], reply))
        return True
