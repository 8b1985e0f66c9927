"""The reference model: an executable specification of a till's observable behaviour.

Written from docs/PROTOCOL.md, docs/CARDS.md §5, domain.md §3-4 and the seed, not from the firmware (it
imports nothing from fiscal_till).  It knows what a host can see: the status word of every request, the
key fields of every reply, and the GET_STATUS summary.

Theory of operation
-------------------
Where the documents leave a choice to the device the model does not guess: it keeps a *set of candidate
states*, and every reply from the device removes the candidates that could not have produced it.  The
choices it allows:

* which error a request gets when several apply (an invalid invoice on a locked till may be refused for
  either reason); every applicable error is accepted, none other, and a refusal changes nothing;
* when days before today are closed: at power-up, by DAILY_CLOSE and before the first invoice of a new
  day they must be (CARDS.md §5); a refused invoice or a clock change *may* also back-fill them;
* whether a request the power (or a pulled card) cut short was executed: both, until the retry with the
  same request id shows which - and the retry must then show exactly one execution (domain §7.1).

The model follows the fiscal card's MAC tries (docs/FIRMWARE.md "MAC tries": refused data never sent
twice, MAC_LAST_TRY, CONFIRM_MAC) and the clock's floor, the newest record's date and time.

A device is conforming while at least one candidate remains.  What the model does not follow (fiscal
memory fullness, the card-lock bits that depend on when the card was last opened) is masked out of
the status comparison and left to explicit expectations in the cases.
"""

from __future__ import annotations

import copy
import datetime as _dt
from typing import NamedTuple

import construct as cs

from protocol import calendar
from protocol import commands
from protocol import errors
from protocol import rules
from protocol import status as status_table
from protocol.calendar import valid_time
from protocol.totals import AMOUNTS, COUNTS

ERR = {e.name: e.code for e in errors.TABLE}
OK = 0
LOCK_BITS = {r.name: r.bit for r in status_table.LOCK_REASONS}
WARN_BITS = {w.name: w.bit for w in status_table.WARNINGS}
MODELLED_LOCKS = ("NOT_INITIALIZED", "DEADLINE", "CUMULATIVE_LIMIT", "RETURN_LIMIT", "NO_ROLL", "SERVICE_LIFE",
                  "CLOCK_FAULT")
STALE_ROLL = (901, 1000)  # the roll for another fiscal card a damaged user card leaves in EF07 (card
#                           variant user_refused_roll)
MODELLED_WARNINGS = ("DEADLINE_NEAR", "AMOUNT_75", "RETURN_75", "ROLL_LOW", "DECLARATION_PENDING", "NON_FISCAL",
                     "MAC_LAST_TRY")
# R-LOCK-MAC (CARDS.md §1 MAC lock): this many consecutive counted MAC failures lock the fiscal card for good
MAC_TRIES = rules.THRESHOLDS["CARD_MAC_TRIES"]
WARN_LIMIT_PERCENT = rules.THRESHOLDS["WARN_LIMIT_PERCENT"]  # R-WARN-LIMITS: AMOUNT_75 / RETURN_75 from here
CONFIRM_MAC = 1 << {name: bit for bit, name in status_table.REQUEST_FLAGS.items()}["CONFIRM_MAC"]
LOCK_MASK = sum(1 << LOCK_BITS[n] for n in MODELLED_LOCKS)
WARN_MASK = sum(1 << WARN_BITS[n] for n in MODELLED_WARNINGS)
MAX_LINES = commands.MAX_LINES
U32 = 0xFFFFFFFF
CARD_ANY = "CARD_ANY"  # any card error, or the lock error of a fiscal-card problem
_CARD_LOCKS = {ERR[n] for n in ("LOCK_FISCAL_CARD_MISSING", "LOCK_FISCAL_CARD_UNREGISTERED",
                                "LOCK_FISCAL_CARD_FOREIGN", "LOCK_PIN_BLOCKED", "LOCK_MAC")}
MAX_CANDIDATES = 64


def is_card_error(code: int) -> bool:
    return code >> 8 == 0x03 or code in _CARD_LOCKS


def status_name(code) -> str:
    if code is None:
        return "any refusal"
    if code == CARD_ANY:
        return "any card error"
    row = errors.BY_CODE.get(code)
    return row.name if row else "0x%04X" % code


# ---------------------------------------------------------------------------------------------- calendar
def as_date(d: int) -> _dt.date | None:
    """The date of a YYYYMMDD the device can hold (years 2000-2099: BCD century 20), else None."""
    if d < 20000101 or d > 20991231:
        return None
    return calendar.as_date(d)


def add_days(d: int, n: int) -> int:
    """Day arithmetic within the device's range (a day outside it is a TypeError, as for days_between)."""
    return calendar.from_date(as_date(d) + _dt.timedelta(days=n))


def days_between(a: int, b: int) -> int:
    return (as_date(b) - as_date(a)).days


def plain(obj):
    """A construct Container (or list) as plain dicts and lists."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [plain(v) for v in obj]
    return obj


# ---------------------------------------------------------------------------------------------- totals
def zero_totals() -> dict:
    return {"normal_count": 0, "return_count": 0, "void_count": 0, "normal_total": 0, "return_total": 0,
            "items": {}}


def add_invoice(t: dict, kind: int, items: dict, total: int) -> None:
    if kind == status_table.INVOICE_VOID:
        t["void_count"] += 1
        return
    k = 0 if kind == status_table.INVOICE_NORMAL else 1
    for item, amount in items.items():
        t["items"].setdefault(item, [0, 0])[k] += amount
    if kind == status_table.INVOICE_NORMAL:
        t["normal_count"] += 1
        t["normal_total"] += total
    else:
        t["return_count"] += 1
        t["return_total"] += total


def add_totals(acc: dict, t: dict) -> None:
    """A period's sums are the sums of its days (protocol/totals.py), in the model's form."""
    for k in COUNTS + AMOUNTS:
        acc[k] += t[k]
    for item, (n, r) in t["items"].items():
        a = acc["items"].setdefault(item, [0, 0])
        a[0] += n
        a[1] += r


def device_totals(t: dict) -> dict:
    """The wire Totals as the model's form (line order is the device's business)."""
    out = {k: t[k] for k in COUNTS + AMOUNTS}
    out["items"] = {ln["item"]: [ln["normal"], ln["returned"]] for ln in t["lines"] if ln["item"]}
    return out


# ---------------------------------------------------------------------------------------------- outcomes
class Outcome:
    """One way the device may answer: a status (or CARD_ANY), a reply check, and the state change."""

    def __init__(self, status, apply=None, check=None, replay: bytes | None = None, durable=False,
                 unknown_replay=None) -> None:
        self.status = status
        self.apply = apply
        self.check = check
        self.replay = replay
        self.durable = durable
        self.unknown_replay = unknown_replay  # a replay of a reply never seen: check it with this

    def matches(self, status: int) -> bool:
        if self.status == CARD_ANY:
            return is_card_error(status)
        return status == self.status


def _refused(code, backfill_variant=None) -> list[Outcome]:
    outs = [Outcome(code)]
    if backfill_variant is not None:
        outs.append(Outcome(code, apply=backfill_variant))
    return outs


# ---------------------------------------------------------------------------------------------- state
class Controls(NamedTuple):
    """The control data a till works under (INIT, then each CLEAR_UNLOCK)."""
    deadline: int
    single_limit: int
    cumulative_limit: int
    return_limit: int


class Roll(NamedTuple):
    """The loaded invoice roll: numbers start..end, `next` the number the next invoice takes."""
    code: str
    start: int
    end: int
    next: int


class UserRoll(NamedTuple):
    """A roll sold onto the user card; genuine False: its MAC is for another fiscal card."""
    code: str
    start: int
    end: int
    genuine: bool


class Period(NamedTuple):
    start: int
    end: int


class UserDecl(NamedTuple):
    """A declaration on the user card's EF04: status 'signed', then 'cleared' by the bureau."""
    start: int
    end: int
    status: str


class UserControls(NamedTuple):
    """Clear-unlock data the bureau wrote: forgery > 0 means its MAC2 is damaged (a different damage each)."""
    controls: Controls
    period_end: int
    forgery: int


class State:
    def __init__(self, profile) -> None:
        p = profile
        self.p = p
        self.date, self.time = 20260105, 90000
        self.initialized = False
        self.init_date = 0
        self.controls: Controls | None = None
        self.cum_normal = self.cum_return = 0
        self.roll: Roll | None = None
        self.invoices: list[dict] = []
        self.day = 0
        self.day_totals = zero_totals()
        self.closed = 0
        self.daily: dict[int, dict] = {}
        self.declared_end = 0
        self.decl: Period | None = None  # the pending declaration
        self.declaration_count = 0
        self.last_date = 0
        self.last_time = 0  # (last_date, last_time): the newest record; the clock may not be behind it
        self.mac_failures = 0  # the fiscal card's consecutive MAC failures (docs/FIRMWARE.md "MAC tries")
        self.card_locked = False  # ... reached MAC_TRIES: 9303 for good
        self.refused: list = []  # MAC-bearing data the fiscal card refused: never handed to it again
        self.user_last_roll: UserRoll | None = None  # in the user card's EF07, not yet loaded nor refused (recovery)
        self.last_req = None  # dict rid, cmd, payload, reply (bytes or None), check
        self.durable_req = None
        # the cards
        self.fiscal_slot = "fiscal"
        self.user_slot = "user"
        self.user_rolls: list[UserRoll] = []  # sold to this till, on the user card
        self.user_decls: list[UserDecl] = []  # on the user card's EF04
        self.user_controls: UserControls | None = None  # written by the bureau
        self.pull = None  # a card pull scheduled for the next request: (slot, executed)
        # the fiscal records the device must have written, in order: (type name, fields); INVOICE records
        # are `invoices`.  "rid": REQ stands for the request id, filled in by _after (records_problems)
        self.history: list[tuple] = []

    def key(self):
        d = {k: v for k, v in vars(self).items() if k not in ("p", "last_req", "durable_req")}
        lr = self.last_req and (self.last_req["rid"], self.last_req["cmd"], self.last_req["payload"],
                                self.last_req["reply"])
        return repr(sorted(d.items())) + repr(lr)

    # ---- derived ---------------------------------------------------------------------------------
    def today_ok(self) -> bool:
        return as_date(self.date) is not None and valid_time(self.time)

    def locks(self) -> set[str]:
        # R-INIT-ONCE, R-LOCK-DEADLINE, R-LOCK-CUMULATIVE, R-LOCK-RETURN-LIMIT, R-LOCK-NO-ROLL, R-LOCK-CLOCK-FAULT,
        # R-LOCK-SERVICE-LIFE; R-LOCKS-ARE-CONDITIONS: computed from the state on every call
        if not self.initialized:
            return {"NOT_INITIALIZED"}
        out = set()
        ctl = self.controls
        if self.date > ctl.deadline:
            out.add("DEADLINE")
        if self.cum_normal >= ctl.cumulative_limit:
            out.add("CUMULATIVE_LIMIT")
        if ctl.return_limit and self.cum_return >= ctl.return_limit:
            out.add("RETURN_LIMIT")
        if self.roll is None or self.roll.next > self.roll.end:
            out.add("NO_ROLL")
        if self.clock_behind() or as_date(self.date) is None:
            out.add("CLOCK_FAULT")
        life = self.init_date + self.p.service_years * 10000
        if self.date >= life:
            out.add("SERVICE_LIFE")
        return out

    def warnings(self) -> set[str]:
        # R-NON-FISCAL, R-WARN-DEADLINE, R-WARN-LIMITS, R-WARN-ROLL-LOW, R-WARN-DECLARATION-PENDING, R-LOCK-MAC
        # (MAC_LAST_TRY)
        out = {"NON_FISCAL"} if self.p.non_fiscal else set()
        if not self.initialized:
            return out
        ctl = self.controls
        if 0 <= self.days_to_deadline() <= self.p.warn_days:
            out.add("DEADLINE_NEAR")
        if self.cum_normal * 100 >= ctl.cumulative_limit * WARN_LIMIT_PERCENT:  # R-WARN-LIMITS
            out.add("AMOUNT_75")
        if ctl.return_limit and self.cum_return * 100 >= ctl.return_limit * WARN_LIMIT_PERCENT:
            out.add("RETURN_75")
        if self.roll is not None and 0 < self.invoices_left() <= self.p.warn_invoices:
            out.add("ROLL_LOW")
        if self.decl is not None:
            out.add("DECLARATION_PENDING")
        if MAC_TRIES - self.mac_failures <= 1 and not self.card_locked:
            out.add("MAC_LAST_TRY")
        return out

    def days_to_deadline(self) -> int:
        if not self.initialized or as_date(self.date) is None:
            return commands.NO_DEADLINE_DAYS
        return max(-0x8000, min(0x7FFE, days_between(self.date, self.controls.deadline)))

    def invoices_left(self) -> int:
        return 0 if self.roll is None else max(0, self.roll.end - self.roll.next + 1)

    def expected_status(self) -> dict:
        # R-STATUS-LEFT: days, amounts and invoices left, after every request
        init = self.initialized
        ctl = self.controls or Controls(0, 0, 0, 0)
        lock = sum(1 << LOCK_BITS[n] for n in self.locks())
        warn = sum(1 << WARN_BITS[n] for n in self.warnings())
        r = self.roll
        return {"state": status_table.STATE_IN_SERVICE if init else status_table.STATE_NEW, "date": self.date,
                "lock_reasons": lock, "warnings": warn, "deadline": ctl.deadline if init else 0,
                "days_to_deadline": self.days_to_deadline(), "single_limit": ctl.single_limit if init else 0,
                "amount_left": max(0, ctl.cumulative_limit - self.cum_normal) if init else 0,
                "return_left": max(0, ctl.return_limit - self.cum_return) if init else 0,
                "roll_code": r.code if r else "", "roll_next": r.next if r else 0, "roll_end": r.end if r else 0,
                "invoices_left": self.invoices_left(), "last_number": self.invoices[-1]["number"]
                if self.invoices else 0, "last_declared_end": self.declared_end}

    def status_problems(self, st: dict) -> list[str]:
        want = self.expected_status()
        out = []
        for k, v in want.items():
            got = st[k]
            if k == "lock_reasons":
                got, v = got & LOCK_MASK, v & LOCK_MASK
                if got != v:
                    out.append("locks %s, expected %s" % (status_table.mask_names(got, status_table.LOCK_REASONS),
                                                          status_table.mask_names(v, status_table.LOCK_REASONS)))
            elif k == "warnings":
                got, v = got & WARN_MASK, v & WARN_MASK
                if got != v:
                    out.append("warnings %s, expected %s" % (status_table.mask_names(got, status_table.WARNINGS),
                                                             status_table.mask_names(v, status_table.WARNINGS)))
            elif got != v:
                out.append("%s %r, expected %r" % (k, got, v))
        return out

    # ---- effects ------------------------------------------------------------------------------------
    def close_through(self, through: int, rid=0) -> int:
        """Close every day after the last closed one up to `through`, zero days included."""
        # R-DAILY-EVERY-DAY: one DAILY per calendar day through `through`, days without sales too
        if not self.initialized or as_date(through) is None:
            return 0
        d = add_days(self.closed, 1) if self.closed else self.init_date
        n = 0
        while d <= through:
            t = self.day_totals if d == self.day else zero_totals()
            self.daily[d] = t
            self.history.append(("DAILY", {"date": d, "totals": copy.deepcopy(t), "rid": rid}))
            if d == self.day:
                self.day, self.day_totals = 0, zero_totals()
            self.closed = d
            d = add_days(d, 1)
            n += 1
        return n

    def yesterday(self) -> int:
        return add_days(self.date, -1) if as_date(self.date) else 0

    def card_ok(self) -> bool:
        return self.fiscal_slot == "fiscal"

    def backfill_variant(self):
        """A refused request may have back-filled the days before today (the device's choice)."""
        if self.initialized and self.card_ok() and self.today_ok() and not self.clock_behind() and \
                self.closed < self.yesterday():
            return lambda s: s.close_through(s.yesterday())
        return None

    def wrote(self) -> None:
        self.wrote_at(self.date, self.time)

    def wrote_at(self, date: int, time: int) -> None:
        """A record dated (date, time) was written (DAILY records carry a date only: time 0)."""
        if (date, time) > (self.last_date, self.last_time):
            self.last_date, self.last_time = date, time

    def clock_behind(self) -> bool:
        # R-LOCK-CLOCK-FAULT
        return (self.date, self.time) < (self.last_date, self.last_time)

    def power_up(self) -> None:
        # R-DAILY-EVERY-DAY (back-fill on power-up), R-POWER-SAFE
        self.pull = None
        self.last_req = self.durable_req
        if self.initialized and self.card_ok() and self.today_ok():
            if not self.clock_behind():
                self.close_through(self.yesterday())
            self.wrote()  # the power-on event
            self.history.append(("EVENT", {"event": "POWER_ON", "rid": 0, "date": self.date, "time": self.time}))


# ---------------------------------------------------------------------------------------------- the model
class Model:
    def __init__(self, profile) -> None:
        self.profile = profile
        self.candidates = [State(profile)]
        self.lost = False  # a mismatch: the device left the specification, the model stops predicting

    # ---- environment -------------------------------------------------------------------------------
    def _each(self, fn) -> None:
        for s in self.candidates:
            fn(s)

    def set_clock(self, date: int, time: int) -> None:
        def f(s):
            s.date, s.time = date, time
        self._each(f)

    def advance(self, delta: _dt.timedelta) -> None:
        def f(s):
            s.date, s.time = calendar.from_datetime(calendar.to_datetime(s.date, s.time) + delta)
        self._each(f)

    def power_cycle(self) -> None:
        self._each(State.power_up)
        self._dedupe()

    def card(self, slot: str, content: str | None) -> None:
        def f(s):
            if slot == "fiscal":
                s.fiscal_slot = content
            elif content == "user_refused_roll":  # our user card, a roll for another fiscal card in EF07
                s.user_slot = "user"
                s.user_last_roll = UserRoll(s.p.roll_code, *STALE_ROLL, False)
            else:
                s.user_slot = content
        self._each(f)

    def pull_after(self, slot: str, executed: bool) -> None:
        def f(s):
            s.pull = (slot, executed)
        self._each(f)

    def sell_roll(self, code: str, start: int, end: int, genuine: bool = True) -> None:
        """genuine False: the roll's MAC is for another fiscal card (or damaged): ours refuses it."""
        self._each(lambda s: s.user_rolls.append(UserRoll(code, start, end, genuine)))

    def bureau_clear(self, controls: tuple) -> list[str]:
        """The bureau verifies the pending declaration on the user card and writes clear-unlock data."""
        controls = Controls(*controls)

        def f(s):
            for i, rec in enumerate(s.user_decls):
                if rec.status == "signed":
                    s.user_decls[i] = rec._replace(status="cleared")
                    s.user_controls = UserControls(controls, rec.end, 0)
        self._each(f)
        return []

    def bureau_rewrite_clear(self, controls: tuple, forgery: int) -> None:
        """Control data written again for the last declaration (forgery > 0: its MAC2 damaged, a
        different damage for each number)."""
        controls = Controls(*controls)

        def f(s):
            if s.user_decls:
                rec = s.user_decls[-1] = s.user_decls[-1]._replace(status="cleared")
                s.user_controls = UserControls(controls, rec.end, forgery)
        self._each(f)

    def bureau_mark_cleared(self) -> None:
        """A tampered user card: declarations marked cleared, no new control data written."""
        def f(s):
            s.user_decls[:] = [rec._replace(status="cleared") for rec in s.user_decls]
        self._each(f)

    # ---- requests ----------------------------------------------------------------------------------
    def expected(self, command: int, rid: int, payload: bytes) -> list[str]:
        names = set()
        for s in self.candidates:
            for o in predict(s, command, rid, payload):
                names.add(status_name(o.status))
        return sorted(names)

    def request(self, command: int, rid: int, payload: bytes, reply: dict | None, *, cut: bool = False) -> list[str]:
        """Advance the model by one request and the device's reply frame (None: no reply, the power
        was cut).  Returns problems (empty: the reply is one the specification allows)."""
        # R-EXACTLY-ONCE: a repeated request id gets the stored reply; R-POWER-SAFE: a cut request is done once or not
        # at all
        if self.lost:
            return []
        new: list[State] = []
        seen: list[str] = []
        for s in self.candidates:
            outcomes = predict(s, command, rid, payload)
            if reply is None:  # cut short: not executed, or executed with its reply lost
                new.append(_after(s, None, command, rid, payload, None, cut=True))
                for o in outcomes:
                    if o.status == OK and o.apply is not None:
                        new.append(_after(s, o, command, rid, payload, None, cut=True))
                continue
            st = reply["status"]
            for o in outcomes:
                seen.append(status_name(o.status))
                if not o.matches(st):
                    continue
                raw = bytes(reply["payload"])
                if o.replay is not None and raw != o.replay:
                    continue
                if o.unknown_replay is not None and o.unknown_replay(raw):
                    continue
                if o.check is not None and st == OK and o.check(parse_reply(command, raw)):
                    continue
                if st != OK and raw:
                    continue  # an error reply has an empty payload
                new.append(_after(s, o, command, rid, payload, raw))
        if not new:
            self.lost = True
            want = sorted(set(seen))
            why = ""
            if reply is not None and reply["status"] == OK and any(
                    o.replay is not None or o.unknown_replay is not None
                    for s in self.candidates for o in predict(s, command, rid, payload)):
                why = "; the reply differs from the one stored for this request id (not a replay: executed again?)"
            elif reply is not None and reply["status"] == OK and "OK" in want:
                for s in self.candidates:
                    for o in predict(s, command, rid, payload):
                        if o.status == OK and o.check is not None:
                            why = "; " + "; ".join(o.check(parse_reply(command, bytes(reply["payload"]))))
                            break
                    if why:
                        break
            return ["%s got %s, the specification allows %s%s" % (
                _cmd_name(command), status_name(reply["status"]) if reply else "no reply",
                " / ".join(want) or "nothing", why)]
        self.candidates = new
        self._dedupe()
        return []

    def status(self, st: dict) -> list[str]:
        """Check a GET_STATUS reply (dict) against the candidates; keep those it fits."""
        if self.lost:
            return []
        keep = [s for s in self.candidates if not s.status_problems(st)]
        if keep:
            self.candidates = keep
            return []
        self.lost = True
        return ["GET_STATUS: " + "; ".join(self.candidates[0].status_problems(st))]

    def _dedupe(self) -> None:
        seen, out = set(), []
        for s in self.candidates:
            k = s.key()
            if k not in seen:
                seen.add(k)
                out.append(s)
        self.candidates = out[:MAX_CANDIDATES]

    @property
    def state(self) -> State:
        return self.candidates[0]


def _cmd_name(code: int) -> str:
    row = commands.BY_CODE.get(code)
    return row.name if row else "command 0x%02X" % code


def parse_reply(command: int, raw: bytes) -> dict:
    try:
        return plain(commands.BY_CODE[command].reply.parse(raw))
    except (cs.ConstructError, KeyError) as e:
        return {"_error": str(e)}


def _after(s: State, o: Outcome | None, command, rid, payload, raw, cut=False) -> State:
    n = copy.deepcopy(s)
    mutating = command in commands.BY_CODE and commands.BY_CODE[command].mutating
    if n.pull is not None:  # the card was pulled during this request
        slot, _executed = n.pull
        n.pull = None
        if slot == "fiscal":
            n.fiscal_slot = None
        else:
            n.user_slot = None
    if o is None:
        return n
    if o.apply is not None:
        before = len(n.history), len(n.invoices)
        o.apply(n)
        _tag(n.history[before[0]:], rid, command, payload)
        _tag(n.invoices[before[1]:], rid, command, payload)
    if mutating and (o.status == OK) and o.replay is None and o.unknown_replay is None:
        n.last_req = {"rid": rid, "cmd": command, "payload": bytes(payload), "reply": raw,
                      "check": o.check}
        if o.durable:
            n.durable_req = n.last_req
    elif o.unknown_replay is not None and raw is not None:
        n.last_req = dict(n.last_req, reply=raw)
        if n.durable_req is not None and n.durable_req["rid"] == rid:
            n.durable_req = n.last_req
    return n


# ---------------------------------------------------------------------------------------------- predict
def predict(s: State, command: int, rid: int, payload: bytes) -> list[Outcome]:
    cmd = commands.BY_CODE.get(command)
    if cmd is None:
        return [Outcome(ERR["LINK_UNKNOWN_COMMAND"])]
    if s.pull is not None:
        return _pulled(s, command, rid, payload)
    if cmd.mutating:
        if rid == 0:
            return [Outcome(ERR["LINK_RID_MISSING"])]
        lr = s.last_req
        if lr is not None and lr["rid"] == rid:
            if lr["cmd"] != command or lr["payload"] != bytes(payload):
                outs = [Outcome(ERR["LINK_RID_REUSED"])]
                if _parse(cmd, payload) is None:
                    outs.append(Outcome(ERR["LINK_BAD_PAYLOAD"]))
                return outs
            if lr["reply"] is None:
                chk = lr["check"]
                return [Outcome(OK, unknown_replay=lambda raw: chk(parse_reply(command, raw)) if chk else [])]
            return [Outcome(OK, replay=lr["reply"])]
        if lr is not None and rid < lr["rid"]:  # ids strictly increase (unsigned 32-bit): an old frame
            return [Outcome(ERR["LINK_RID_STALE"])]
    req = _parse(cmd, payload)
    if req is None:
        outs = [Outcome(ERR["LINK_BAD_PAYLOAD"])]
        if cmd.name == "ISSUE_INVOICE":
            outs.append(Outcome(ERR["INPUT_BAD_TEXT"]))
        return outs
    return HANDLERS[cmd.name](s, req)


def _pulled(s: State, command, rid, payload) -> list[Outcome]:
    """The card is pulled out during this request: a card error; done or not, as the pull said."""
    # R-POWER-SAFE: a card pulled mid-request leaves the request done once or not at all
    saved = s.pull
    s.pull = None
    try:
        inner = predict(s, command, rid, payload)
    finally:
        s.pull = saved
    outs = [Outcome(CARD_ANY)]
    if saved[1]:
        for o in inner:
            if o.status == OK and o.apply is not None:
                # executed but not answered: the retry must replay it
                def apply(n, o=o):
                    o.apply(n)
                    n.last_req = {"rid": rid, "cmd": command, "payload": bytes(payload), "reply": None,
                                  "check": o.check}
                    if o.durable:
                        n.durable_req = n.last_req
                outs.append(Outcome(CARD_ANY, apply=apply))
    return outs


def _parse(cmd, payload):
    if not payload and cmd.request is commands.FlagsRequest:
        return {"flags": 0}  # protocol 1.0 hosts send no flags byte (commands.py FlagsRequest)
    try:
        r = cmd.request.parse(bytes(payload))
        if len(cmd.request.build(r)) != len(payload):
            return None  # trailing bytes
        return plain(r)
    except (cs.ConstructError, UnicodeError, ValueError):
        return None


def _checker(*pairs):
    """A reply check from (field, expected) pairs; returns problems."""
    def check(reply: dict) -> list[str]:
        if "_error" in reply:
            return ["reply does not parse: " + reply["_error"]]
        out = []
        for k, v in pairs:
            got = reply.get(k)
            if k == "totals":
                got = device_totals(got)
            elif k == "lines":
                got = {ln["item"]: ln["amount"] for ln in got if ln["item"]}
            if got != v:
                out.append("%s %r, expected %r" % (k, got, v))
        return out
    return check


def _clock_errors(s: State) -> set:
    errs = set()
    if not s.today_ok():
        errs.add(ERR["CLOCK_INVALID"])
    elif s.clock_behind():
        errs.add(ERR["LOCK_CLOCK_FAULT"])
    return errs


# ---- GET_INFO / GET_STATUS ---------------------------------------------------------------------------
def _get_info(s, req):
    # R-DEVICE-IDENTITY
    return [Outcome(OK, check=_checker(("machine_no", s.p.machine_no), ("protocol_version", commands.PROTOCOL_VERSION),
                                       ("max_payload", 4096)))]


def _get_status(s, req):
    def check(reply):
        return s.status_problems(reply) if "_error" not in reply else [reply["_error"]]
    return [Outcome(OK, check=check)]


# ---- INITIALIZE ----------------------------------------------------------------------------------------
def _initialize(s, req):
    # R-INIT-ONCE, R-INIT-CHECKS, R-CARD-VALIDITY
    if s.initialized:
        return [Outcome(ERR["STATE_ALREADY_INITIALIZED"])]
    date, time = req["date"], req["time"]
    if as_date(date) is None or not valid_time(time):
        return [Outcome(ERR["INPUT_BAD_DATE"])]
    errs = set()
    if not s.p.card_valid_from <= date <= s.p.card_valid_to:
        errs.add(ERR["CARD_EXPIRED"])
    if s.fiscal_slot != "fiscal" or s.user_slot != "user":
        errs.add(CARD_ANY)
    if errs:
        return [Outcome(e) for e in errs]
    p = s.p

    def apply(n):
        n.initialized = True
        n.init_date = date
        n.date, n.time = date, time
        n.controls = Controls(p.deadline, p.single_limit, p.cumulative_limit, p.return_limit)
        n.last_date, n.last_time = date, time
        n.history.append(("INIT", {"rid": REQ, "date": date, "time": time, "machine_no": p.machine_no,
                                   "fiscal_card_no": p.fiscal_card_no, "taxpayer_no": p.taxpayer_no,
                                   "valid_from": p.card_valid_from, "valid_to": p.card_valid_to,
                                   "controls": _controls(n.controls), "tax_items": list(p.tax_items)}))
    return [Outcome(OK, apply=apply, durable=True,
                    check=_checker(("machine_no", p.machine_no), ("fiscal_card_no", p.fiscal_card_no),
                                   ("taxpayer_no", p.taxpayer_no)))]


def _need_init(s) -> int | None:
    return None if s.initialized else ERR["LOCK_NOT_INITIALIZED"]


# ---- LOAD_ROLL ---------------------------------------------------------------------------------------------
def _last_try(s, req) -> bool:
    """One MAC try left and the request does not confirm it: MAC-bearing data stays off the card."""
    # R-LOCK-MAC: the last try needs CONFIRM_MAC
    return MAC_TRIES - s.mac_failures <= 1 and not (req.get("flags") or 0) & CONFIRM_MAC


def _mac_refused(s, key, status: str, take) -> Outcome:
    """The fiscal card refuses MAC-bearing data `key`: counted, remembered, logged; 9303 on the last try."""
    # R-LOCK-MAC: a counted refusal; MAC_TRIES of them lock the card for good
    locks = s.mac_failures + 1 >= MAC_TRIES

    def apply(n):
        take(n)
        n.mac_failures += 1
        n.card_locked = n.card_locked or n.mac_failures >= MAC_TRIES
        n.refused.append(key)
        n.wrote()  # the ROLL_REFUSED / CONTROLS_REFUSED event
    return Outcome(ERR["CARD_LOCKED"] if locks else ERR[status], apply=apply)


def _load_roll(s, req):
    # R-LOCK-NO-ROLL (one roll at a time, from the user card), R-LOCK-USER-CARD, R-LOCK-MAC
    if not s.initialized:
        return [Outcome(ERR["LOCK_NOT_INITIALIZED"])]
    errs = _clock_errors(s)
    last_try = _last_try(s, req)
    if s.fiscal_slot != "fiscal" or s.card_locked:
        errs.add(CARD_ANY)
    if s.roll is not None and s.roll.next <= s.roll.end:
        errs.add(ERR["STATE_ROLL_LOADED"])
    pending = None
    if s.user_slot != "user":
        errs.add(CARD_ANY)
    elif s.user_last_roll is not None and s.user_last_roll not in s.refused:
        pending = s.user_last_roll  # EF07: recovered first (CARDS.md §5 Roll loading)
    else:
        if last_try:
            errs.add(ERR["CARD_MAC_LAST_TRY"])
        if not s.user_rolls:
            errs.add(ERR["CARD_NO_ROLL"])
    if errs:
        return [Outcome(e) for e in errs]
    roll = pending or s.user_rolls[0]
    code, start, end, genuine = roll

    def take(n):
        if pending is not None:
            n.user_last_roll = None
        else:
            n.user_rolls.pop(0)
    if pending is None and roll in s.refused:  # sold again: refused without the card
        return [Outcome(ERR["CARD_ROLL_REFUSED"], apply=take)]
    if last_try:
        return [Outcome(ERR["CARD_MAC_LAST_TRY"])]
    if not genuine:
        return [_mac_refused(s, roll, "CARD_ROLL_REFUSED", take)]

    def apply(n):
        take(n)
        n.roll = Roll(code, start, end, next=start)
        n.mac_failures = 0  # a success resets the card's count
        n.wrote()
        n.history.append(("ROLL_LOAD", {"rid": REQ, "date": n.date, "time": n.time, "code": code, "start": start,
                                        "end": end}))
    return [Outcome(OK, apply=apply, durable=True, check=_checker(("code", code), ("start", start), ("end", end)))]


# ---- ISSUE_INVOICE -------------------------------------------------------------------------------------
def invoice_input_errors(s, req) -> tuple[set, dict]:
    """Errors of the request itself, and the per-tax-item split of a valid one."""
    # R-INPUT-CHECKED, R-INVOICE-LINES, R-INVOICE-VOID
    kind, lines, total, ref = req["kind"], req["lines"], req["total"], req["ref_number"]
    errs = set()
    if kind == status_table.INVOICE_VOID:
        if lines or total != 0:
            errs.add(ERR["INPUT_BAD_AMOUNT"])
        if ref != 0:  # the documents disagree on what a void may reference: any refusal is accepted
            errs.add("ANY_REFUSAL")
        return errs, {}
    if kind not in (status_table.INVOICE_NORMAL, status_table.INVOICE_RETURN):
        return {ERR["INPUT_BAD_KIND"]}, {}
    if kind == status_table.INVOICE_NORMAL and ref != 0:
        errs.add(ERR["INPUT_BAD_REFERENCE"])
    if kind == status_table.INVOICE_RETURN and ref == 0:
        errs.add(ERR["INPUT_BAD_REFERENCE"])
    if not lines:
        errs.add(ERR["INPUT_BAD_AMOUNT"])
    if len(lines) > MAX_LINES:
        errs.add(ERR["INPUT_TOO_MANY_LINES"])
    items: dict[int, int] = {}
    running = 0
    for ln in lines:
        if ln["amount"] <= 0 or ln["quantity"] <= 0:
            errs.add(ERR["INPUT_BAD_AMOUNT"])
        if ln["tax_item"] not in s.p.tax_items:
            errs.add(ERR["INPUT_UNKNOWN_TAX_ITEM"])
        exact = commands.line_amount(ln["quantity"], ln["unit_price"])  # PROTOCOL.md, invoice lines
        if exact > U32:
            errs.add(ERR["INPUT_AMOUNT_OVERFLOW"])
        elif exact != ln["amount"] and ln["amount"] > 0 and ln["quantity"] > 0:
            errs.add(ERR["INPUT_LINE_MISMATCH"])
        items[ln["tax_item"]] = items.get(ln["tax_item"], 0) + ln["amount"]
        running += ln["amount"]
    if running > U32:
        errs.add(ERR["INPUT_AMOUNT_OVERFLOW"])
    if len(items) > 6:
        errs.add(ERR["INPUT_TOO_MANY_TAX_ITEMS"])
    if running != total and running <= U32:
        errs.add(ERR["INPUT_TOTAL_MISMATCH"])
    return errs, {k: v for k, v in items.items() if k in s.p.tax_items}


def _issue(s, req):
    # R-INVOICE-NUMBERING, R-LOCK-SINGLE-LIMIT, R-LOCK-CUMULATIVE, R-LOCK-RETURN-LIMIT, R-INVOICE-RETURN, R-ROLL-USAGE,
    # R-DAILY-EVERY-DAY (a new day closes the days before it)
    errs, items = invoice_input_errors(s, req)
    kind, total, ref = req["kind"], req["total"], req["ref_number"]
    if not s.initialized:
        errs.add(ERR["LOCK_NOT_INITIALIZED"])
    else:
        errs |= _clock_errors(s)
        if s.today_ok() and s.date <= s.closed:
            errs.add(ERR["STATE_DAY_CLOSED"])
        if s.fiscal_slot != "fiscal":
            errs.add(CARD_ANY)
        for name in s.locks():
            errs.add(ERR["LOCK_" + name])
        ctl = s.controls
        if total > ctl.single_limit:
            errs.add(ERR["LOCK_SINGLE_LIMIT"])
        if kind == status_table.INVOICE_NORMAL and s.cum_normal + total > ctl.cumulative_limit:
            errs.add(ERR["LOCK_CUMULATIVE_LIMIT"])
        if kind == status_table.INVOICE_RETURN:
            if s.cum_return + total > ctl.return_limit:
                errs.add(ERR["LOCK_RETURN_LIMIT"])
            orig = next((i for i in reversed(s.invoices) if i["number"] == ref and i["kind"] == status_table.INVOICE_NORMAL
                         and i["code"] == (s.roll.code if s.roll else None)), None)
            returned = sum(i["total"] for i in s.invoices if i["kind"] == status_table.INVOICE_RETURN and i["ref"] == ref)
            if orig is None or returned + total > orig["total"]:
                errs.add(ERR["INPUT_BAD_REFERENCE"])
    if errs:
        if "ANY_REFUSAL" in errs:
            return [_AnyRefusal()]
        bf = s.backfill_variant()
        return [o for e in errs for o in _refused(e, bf)]
    number = s.roll.next
    code = s.roll.code
    date = s.date

    def apply(n):
        n.close_through(n.yesterday())
        n.roll = n.roll._replace(next=number + 1)
        n.invoices.append({"number": number, "kind": kind, "code": code, "total": total, "ref": ref,
                           "date": date, "items": dict(items), "time": n.time, "rid": REQ})
        if kind == status_table.INVOICE_NORMAL:
            n.cum_normal += total
        elif kind == status_table.INVOICE_RETURN:
            n.cum_return += total
        if n.day != date:
            n.day, n.day_totals = date, zero_totals()
        add_invoice(n.day_totals, kind, items, total)
        n.wrote()
        if number == n.roll.end:  # the roll is used up: its usage summary (验旧)
            used = [i for i in n.invoices if i["code"] == code and n.roll.start <= i["number"] <= n.roll.end]
            n.history.append(("ROLL_USAGE", {"date": date, "code": code, "start": n.roll.start, "end": n.roll.end,
                                             "normal": sum(i["kind"] == status_table.INVOICE_NORMAL for i in used),
                                             "returned": sum(i["kind"] == status_table.INVOICE_RETURN for i in used),
                                             "voided": sum(i["kind"] == status_table.INVOICE_VOID for i in used),
                                             "last_number": number}))
    return [Outcome(OK, apply=apply, durable=True,
                    check=_checker(("kind", kind), ("code", code), ("number", number), ("date", date),
                                   ("ref_number", ref), ("total", total), ("lines", dict(items))))]


class _AnyRefusal(Outcome):
    def __init__(self):
        super().__init__(None)

    def matches(self, status):
        return status != OK


# ---- GET_DOCUMENT --------------------------------------------------------------------------------------
def _document(s, req):
    # R-EXACTLY-ONCE: GET_DOCUMENT(0) names the last document
    number = req["number"]
    found = None
    for inv in reversed(s.invoices):
        if number == 0 or inv["number"] == number:
            found = inv
            break
    if found is None:
        outs = [Outcome(ERR["INPUT_NOT_FOUND"])]
        if not s.initialized:
            outs.append(Outcome(ERR["LOCK_NOT_INITIALIZED"]))
        return outs
    return [Outcome(OK, check=_checker(("kind", found["kind"]), ("number", found["number"]),
                                       ("code", found["code"]), ("date", found["date"]),
                                       ("total", found["total"]), ("ref_number", found["ref"]),
                                       ("lines", found["items"])))]


# ---- DAILY_CLOSE ----------------------------------------------------------------------------------------
def _daily_close(s, req):
    # R-DAILY-EVERY-DAY, R-LOCKED-STILL-SERVES
    if not s.initialized:
        return [Outcome(ERR["LOCK_NOT_INITIALIZED"])]
    errs = _clock_errors(s)
    if s.fiscal_slot != "fiscal":
        errs.add(CARD_ANY)
    if errs:
        return [Outcome(e) for e in errs]
    first = add_days(s.closed, 1) if s.closed else s.init_date
    today = s.date
    n = days_between(first, today) + 1 if first <= today else 0
    if n <= 0:
        # took effect without a record: the device keeps it in nvram, so it survives a reboot
        return [Outcome(OK, durable=True, check=_checker(("first", 0), ("last", 0), ("count", 0)))]

    def apply(n_):
        n_.close_through(today, rid=REQ)
        n_.wrote_at(today, 0)  # DAILY records carry the day, no time
    return [Outcome(OK, apply=apply, durable=True,
                    check=_checker(("first", first), ("last", today), ("count", n)))]


# ---- DECLARE --------------------------------------------------------------------------------------------
def _declare(s, req):
    # R-DECLARE-PERIOD, R-DECLARE-DELIVERED, R-WARN-DECLARATION-PENDING, R-LOCK-USER-CARD
    if not s.initialized:
        return [Outcome(ERR["LOCK_NOT_INITIALIZED"])]
    errs = _clock_errors(s)
    if s.decl is not None:
        errs.add(ERR["STATE_DECLARATION_PENDING"])
    # the days before today are over: a declaration first closes them (docs/FIRMWARE.md), so judge it
    # against the state after that back-fill
    bf = s.backfill_variant() if s.decl is None else None
    if bf is not None:
        s = copy.deepcopy(s)
        bf(s)
    end = req["end"] or s.closed
    undeclared = sorted(d for d in s.daily if d > s.declared_end)
    if req["end"] and as_date(req["end"]) is None:
        errs.add(ERR["INPUT_BAD_DATE"])
    elif not end or end > s.closed or end <= s.declared_end:
        errs.add(ERR["STATE_NOTHING_TO_DECLARE"] if not undeclared else ERR["INPUT_BAD_RANGE"])
    days = [d for d in undeclared if d <= end]
    if not days:  # e.g. an end before the first undeclared day
        errs |= {ERR["STATE_NOTHING_TO_DECLARE"], ERR["INPUT_BAD_RANGE"]}
    if s.fiscal_slot != "fiscal" or s.user_slot != "user":
        errs.add(CARD_ANY)
    if errs:
        return [o for e in errs for o in _refused(e, bf)]
    totals = zero_totals()
    for d in days:
        add_totals(totals, s.daily[d])
    start = days[0]
    today = s.date

    def apply(n):
        if bf is not None:
            bf(n)
        n.declared_end = end
        n.decl = Period(start, end)
        n.declaration_count += 1
        n.user_decls.append(UserDecl(start, end, "signed"))
        n.wrote()
        n.history.append(("DECLARATION", {"rid": REQ, "date": n.date, "time": n.time, "start": start, "end": end,
                                          "totals": copy.deepcopy(totals)}))
    return [Outcome(OK, apply=apply, durable=True,
                    check=_checker(("start", start), ("end", end), ("date", today), ("totals", totals)))]


# ---- CLEAR_UNLOCK ---------------------------------------------------------------------------------------
def _clear_unlock(s, req):
    # R-CLEAR-UNLOCK, R-WARN-DECLARATION-PENDING, R-LOCK-MAC
    if not s.initialized:
        return [Outcome(ERR["LOCK_NOT_INITIALIZED"])]
    errs = _clock_errors(s)
    if s.decl is None:
        errs.add(ERR["STATE_NOT_DECLARED"])
        return [Outcome(e) for e in errs]
    if s.user_slot != "user" or s.fiscal_slot != "fiscal":
        errs.add(CARD_ANY)
    else:
        if any(r.status == "signed" and r.end == s.decl.end for r in s.user_decls) or s.user_controls is None:
            errs.add(ERR["STATE_DECLARATION_PENDING"])
        elif s.user_controls.period_end != s.decl.end:  # control data of an earlier period: a replay
            errs |= {ERR["CARD_CONDITIONS"], ERR["STATE_DECLARATION_PENDING"]}
            if _last_try(s, req):
                errs.add(ERR["CARD_MAC_LAST_TRY"])
    if s.card_locked:
        errs.add(CARD_ANY)
    if errs:
        return [Outcome(e) for e in errs]
    controls, period_end, forgery = s.user_controls
    key = ("controls", period_end, forgery)
    if forgery and key in s.refused:
        return [Outcome(ERR["CARD_MAC"])]  # refused before: never handed to the card again
    if _last_try(s, req):
        return [Outcome(ERR["CARD_MAC_LAST_TRY"])]
    if forgery:
        return [_mac_refused(s, key, "CARD_MAC", lambda n: None)]

    def apply(n):
        n.controls = controls
        n.cum_normal = n.cum_return = 0
        n.decl = None
        n.mac_failures = 0
        n.wrote()
        n.history.append(("CLEAR_UNLOCK", {"rid": REQ, "date": n.date, "time": n.time, "period_end": period_end,
                                           "controls": _controls(controls)}))
        n.history.append(("EVENT", {"event": "UNLOCKED", "rid": 0, "date": n.date, "time": n.time,
                                    "arg": period_end}))
    return [Outcome(OK, apply=apply, durable=True,
                    check=_checker(("period_end", period_end), ("controls", _controls(controls))))]


def _inspector_errors(s, *, any_card_error: bool) -> set:
    """What the till may answer when the management card is checked: the fiscal card must be in, the
    user slot must hold a management card valid by the till's clock; a card error of any kind
    (CARD_ANY) is allowed where the firmware may meet the wrong card mid-sequence."""
    errs = set()
    if s.fiscal_slot != "fiscal":
        errs.add(CARD_ANY)
    if s.user_slot == "expired_management":  # genuine, but not valid by the till's clock
        errs.add(ERR["CARD_EXPIRED"])
    elif s.user_slot != "management":
        errs.add(ERR["CARD_MGMT_MISSING"])
        if any_card_error:
            errs.add(CARD_ANY)
    return errs


# ---- SET_TIME -------------------------------------------------------------------------------------------
def _set_time(s, req):
    # R-CLOCK-FORWARD, R-CARD-ROLES, R-CARD-VALIDITY
    date, time = req["date"], req["time"]
    if as_date(date) is None or not valid_time(time):
        return [Outcome(ERR["INPUT_BAD_DATE"])]
    if s.initialized:
        errs = _inspector_errors(s, any_card_error=s.user_slot not in (None, "user"))
        if (date, time) < (s.date, s.time) or (date, time) < (s.last_date, s.last_time):
            errs.add(ERR["CLOCK_BACKWARDS"])
        if errs:
            return [Outcome(e) for e in errs]

    def apply(n):
        old = n.date
        n.date, n.time = date, time
        if n.initialized:
            n.wrote()
            n.history.append(("EVENT", {"event": "CLOCK_SET", "rid": REQ, "date": date, "time": time, "arg": old}))

    def apply_backfill(n):
        apply(n)
        if n.initialized:
            n.close_through(n.yesterday())
    outs = [Outcome(OK, apply=apply, durable=True, check=_checker())]  # before INITIALIZE: in nvram
    if s.initialized:
        outs.append(Outcome(OK, apply=apply_backfill, durable=True, check=_checker()))
    return outs


# ---- INSPECT --------------------------------------------------------------------------------------------
def _inspect(s, req):
    # R-INSPECTION, R-CARD-ROLES, R-CARD-VALIDITY
    if not s.initialized:
        return [Outcome(ERR["LOCK_NOT_INITIALIZED"])]
    errs = _inspector_errors(s, any_card_error=True)
    if errs:
        return [Outcome(e) for e in errs]
    return [Outcome(OK, apply=lambda n: n.wrote(), check=_checker(("machine_no", s.p.machine_no), ("fiscal_card_no", s.p.fiscal_card_no),
                                       ("taxpayer_no", s.p.taxpayer_no), ("init_date", s.init_date),
                                       ("daily_count", len(s.daily)),
                                       ("declaration_count", s.declaration_count),
                                       ("invoice_count", len(s.invoices))))]


# ---- REPORT ---------------------------------------------------------------------------------------------
def _report(s, req):
    # R-REPORTS
    if not s.initialized:
        return [Outcome(ERR["LOCK_NOT_INITIALIZED"])]
    kind = req["kind"]
    if kind == status_table.REPORT_X:
        start = s.day or s.date
        return [Outcome(OK, check=_checker(("kind", kind), ("start", start), ("end", s.date),
                                           ("totals", s.day_totals)))]
    if kind not in (status_table.REPORT_Z, status_table.REPORT_PERIOD):
        return [Outcome(ERR["INPUT_BAD_KIND"])]
    start = req["start"]
    end = req["end"] if kind == status_table.REPORT_PERIOD else start
    if as_date(start) is None or as_date(end) is None:
        return [Outcome(ERR["INPUT_BAD_DATE"])]
    if end < start:
        return [Outcome(ERR["INPUT_BAD_DATE"]), Outcome(ERR["INPUT_BAD_RANGE"])]
    days = [d for d in s.daily if start <= d <= end]
    if not days:
        return [Outcome(ERR["INPUT_NOT_FOUND"])]
    totals = zero_totals()
    for d in sorted(days):
        add_totals(totals, s.daily[d])
    return [Outcome(OK, check=_checker(("kind", kind), ("start", start), ("end", end), ("totals", totals)))]


# ---- READ_JOURNAL ---------------------------------------------------------------------------------------
def _read_journal(s, req):
    # R-FM-APPEND-ONLY: the read-out is the journal as written
    off, length = req["offset"], req["length"]

    def check(reply):
        if "_error" in reply:
            return [reply["_error"]]
        out = []
        if reply["offset"] != off:
            out.append("offset %d, expected %d" % (reply["offset"], off))
        if len(reply["data"]) > length or off + len(reply["data"]) > reply["total"]:
            out.append("%d data bytes at %d of %d for a request of %d" % (len(reply["data"]), off,
                                                                         reply["total"], length))
        return out
    outs = [Outcome(OK, check=check)]
    if off > 0:
        outs.append(Outcome(ERR["INPUT_BAD_RANGE"]))
    return outs


HANDLERS = {
    "GET_INFO": _get_info, "GET_STATUS": _get_status, "SET_TIME": _set_time, "INITIALIZE": _initialize,
    "LOAD_ROLL": _load_roll, "ISSUE_INVOICE": _issue, "GET_DOCUMENT": _document, "DAILY_CLOSE": _daily_close,
    "DECLARE": _declare, "CLEAR_UNLOCK": _clear_unlock, "READ_JOURNAL": _read_journal, "INSPECT": _inspect,
    "REPORT": _report,
}


# ---------------------------------------------------------------------------------------------- records
REQ = "request"  # placeholder for the request tag of the request that writes a record (filled by _after)


def _tag(entries, rid, command, payload) -> None:
    import zlib
    for e in entries:
        fields = e[1] if isinstance(e, tuple) else e
        if fields.get("rid") == REQ:
            fields["rid"], fields["digest"] = rid, zlib.crc32(bytes(payload), zlib.crc32(bytes([command])))


def _controls(ctl: Controls) -> dict:
    return dict(ctl._asdict())
