"""Which command works in which till state, and the order of every command's checks.

A request is checked in a fixed order and refused with the error of the *first* check it fails; nothing
is written before the last check passed (a refused request changes nothing and is not remembered).  The
link checks (LINK_CHECKS) run for every command first, then the command's own (RULES[name].checks).
Before the first request after boot is checked at all, the till back-fills the days missed while it was
off (keep-alives meanwhile).

Till states, as a host sees them in GET_STATUS (TILL_STATES):

- NEW: `state` NEW (0), no lock but NOT_INITIALIZED: factory state, no INIT record;
- IN_SERVICE: `state` IN_SERVICE (1), `lock_reasons` 0;
- LOCKED: `state` IN_SERVICE with a lock reason standing other than FM_DAMAGED: issuing is refused
  with that lock's error, the commands that end a lock (LOAD_ROLL, DAILY_CLOSE, DECLARE, CLEAR_UNLOCK)
  and the read-only ones keep working;
- DAMAGED: lock FM_DAMAGED: fiscal memory refuses every append, read-outs keep working.  The table's
  DAMAGED column is a till whose INIT record is readable (`state` IN_SERVICE); when INIT itself is
  unreadable `state` reads NEW and INITIALIZE is refused with FM_DAMAGED (the card is never registered
  over a damaged journal).

In the table, OK means the state does not refuse the command (its checks decide); LOCK means "the error
of the first lock reason standing, in bit order (protocol.status.LOCK_REASONS)", the error GET_STATUS
lets a host predict.  A command that needs the fiscal card's PIN session (check `session`) answers LOCK
when the card cannot be opened: the card's own lock reason, or a lower-numbered one standing with it.
tests/test_protocol_states.py holds the firmware to this table, state by state and check by check.

A till whose fiscal core cannot start at all (a firmware fault; firmware/fiscal_till/fallback.py) shows
`state` NEW with locks NOT_INITIALIZED and FM_DAMAGED and the date 0, answers GET_INFO, GET_STATUS and
READ_JOURNAL (a read-only mount, if one mounts), and every other command with LINK_DEVICE_FAULT.
"""

from __future__ import annotations

from typing import NamedTuple

NEW = "NEW"
IN_SERVICE = "IN_SERVICE"
LOCKED = "LOCKED"
DAMAGED = "DAMAGED"
TILL_STATES = (NEW, IN_SERVICE, LOCKED, DAMAGED)

OK = "OK"
LOCK = "LOCK"  # the error of the first lock reason standing (bit order)


class Check(NamedTuple):
    key: str  # short name, for tests and cross-references
    when: str  # what refuses the request
    errors: tuple[str, ...]  # protocol.errors names (or LOCK); several when the cause picks one


class CommandRules(NamedTuple):
    name: str  # protocol.commands name
    states: dict[str, str]  # till state -> OK, LOCK or the error a request gets there
    checks: tuple[Check, ...]  # in the order the till runs them
    note: str = ""


def _c(key: str, when: str, *errors: str) -> Check:
    return Check(key, when, errors)


def _states(new: str, in_service: str, locked: str, damaged: str) -> dict[str, str]:
    return {NEW: new, IN_SERVICE: in_service, LOCKED: locked, DAMAGED: damaged}


ALWAYS = _states(OK, OK, OK, OK)

LINK_CHECKS: tuple[Check, ...] = (
    _c("unknown", "the command code is not in the command table", "LINK_UNKNOWN_COMMAND"),
    _c("rid_missing", "a mutating request carries RID 0", "LINK_RID_MISSING"),
    _c("rid_replay", "a mutating request carries the last executed RID: with the same command and payload "
       "the remembered reply is sent again (OK, nothing runs), else", "LINK_RID_REUSED"),
    _c("rid_stale", "a mutating request's RID is below the last executed one (unsigned 32-bit)", "LINK_RID_STALE"),
    _c("payload", "the payload does not parse as the command's request (short, trailing bytes, bad BCD, "
       "text not UTF-8, or not ASCII in a digits field)", "LINK_BAD_PAYLOAD"),
)
AFTER_CHECKS: tuple[Check, ...] = (
    _c("reply_too_long", "the reply would not fit MAX_PAYLOAD", "LINK_REPLY_TOO_LONG"),
    _c("fault", "a hardware fault or a bug interrupted the request (boot recovery mends the state)",
       "LINK_DEVICE_FAULT"),
)

# checks shared by the fiscal commands, in this order
_DAMAGED = _c("damaged", "fiscal memory is damaged (lock FM_DAMAGED)", "LOCK_FM_DAMAGED")
_NEW = _c("new", "the till is not initialized", "LOCK_NOT_INITIALIZED")
_CLOCK_INVALID = _c("clock_invalid", "the clock does not read a valid date and time", "CLOCK_INVALID")
_CLOCK_BEHIND = _c("clock_behind", "the clock reads earlier than the newest record", "LOCK_CLOCK_FAULT")
_SESSION = _c("session", "the fiscal card's PIN session cannot be opened (card missing, foreign, PIN "
              "blocked, MAC-locked)", LOCK)
_FISCAL_GATE = (_DAMAGED, _NEW, _CLOCK_INVALID, _CLOCK_BEHIND)
_BAD_DATE = _c("bad_date", "the date or time is not a calendar date (2000..2099) and time of day",
               "INPUT_BAD_DATE")
_MGMT = (
    _c("mgmt_missing", "no management card in the user slot", "CARD_MGMT_MISSING"),
    _c("mgmt_expired", "the management card is outside its validity dates (today, or the newest record's "
       "date when the clock is invalid or behind it)", "CARD_EXPIRED"),
)
_APPEND = _c("append", "fiscal memory refuses the record", "FM_DAMAGED", "FM_FULL", "FM_WRITE_FAILED")
_CARD = _c("card", "a card refuses a command or is pulled out (the card status word's error)", "CARD_*")
_USER = _c("user_card", "no user card, not a user card, or one of another taxpayer or without this till",
           "CARD_USER_MISSING", "CARD_WRONG_TYPE", "CARD_FOREIGN_TAXPAYER")

RULES: tuple[CommandRules, ...] = (
    CommandRules("GET_INFO", ALWAYS, ()),
    CommandRules("GET_STATUS", ALWAYS, ()),
    CommandRules("SET_TIME", _states(OK, OK, OK, "FM_DAMAGED"), (
        _BAD_DATE,
        _c("session", "(initialized only) the fiscal card's PIN session cannot be opened", LOCK),
        *_MGMT,
        _c("rights", "the management card lacks the clock right", "CLOCK_UNAUTHORIZED"),
        _c("backwards", "the new time is earlier than the clock or than the newest record", "CLOCK_BACKWARDS"),
        _APPEND,
    ), "Before INITIALIZE the clock is set with no card and nothing recorded.  DAMAGED: the CLOCK_SET event "
       "cannot be written, so the reply is FM_DAMAGED and the clock is left as it was."),
    CommandRules("INITIALIZE", _states(OK, "STATE_ALREADY_INITIALIZED", "STATE_ALREADY_INITIALIZED",
                                       "STATE_ALREADY_INITIALIZED"), (
        _c("initialized", "the till holds an INIT record", "STATE_ALREADY_INITIALIZED"),
        _BAD_DATE,
        _c("no_journal", "no fiscal memory mounted / fiscal memory damaged", "FM_WRITE_FAILED", "FM_DAMAGED"),
        _c("fiscal_card", "no fiscal card in the SAM slot, mute, or not a fiscal card", "CARD_FISCAL_MISSING",
           "CARD_NO_RESPONSE", "CARD_WRONG_TYPE"),
        _c("foreign", "the fiscal card names another machine", "CARD_FOREIGN_MACHINE"),
        _c("expired", "the request's date is outside the fiscal card's validity", "CARD_EXPIRED"),
        _USER,
        _CARD,
    ), "DAMAGED with INIT unreadable: state NEW and FM_DAMAGED (check no_journal)."),
    CommandRules("LOAD_ROLL", _states("LOCK_NOT_INITIALIZED", "STATE_ROLL_LOADED", OK, "LOCK_FM_DAMAGED"), (
        *_FISCAL_GATE, _SESSION,
        _c("roll_loaded", "a roll with numbers left is loaded", "STATE_ROLL_LOADED"),
        _USER,
        _c("mac_last_try", "the fiscal card has one MAC try left and flags lack CONFIRM_MAC", "CARD_MAC_LAST_TRY"),
        _c("no_roll", "the user card holds no roll for this till", "CARD_NO_ROLL"),
        _c("roll_refused", "the fiscal card refuses the roll's MAC (the roll is taken off the user card)",
           "CARD_ROLL_REFUSED", "CARD_LOCKED"),
        _APPEND,
    ), "IN_SERVICE implies a roll with numbers left, so LOAD_ROLL needs the NO_ROLL lock."),
    CommandRules("ISSUE_INVOICE", _states("LOCK_NOT_INITIALIZED", OK, LOCK, "LOCK_FM_DAMAGED"), (
        *_FISCAL_GATE,
        _c("day_closed", "today was closed by DAILY_CLOSE", "STATE_DAY_CLOSED"),
        _c("void_form", "VOID with lines, a total or a reference", "INPUT_BAD_AMOUNT"),
        _c("kind", "kind is not NORMAL, RETURN or VOID", "INPUT_BAD_KIND"),
        _c("reference", "NORMAL with a ref_number, or RETURN without one", "INPUT_BAD_REFERENCE"),
        _c("no_lines", "NORMAL or RETURN without lines", "INPUT_BAD_AMOUNT"),
        _c("too_many_lines", "more than MAX_LINES lines", "INPUT_TOO_MANY_LINES"),
        _c("line", "line by line, in order: amount or quantity 0; tax item 0 or not authorised; "
           "quantity x unit price past 32 bits; amount is not line_amount(); running total past 32 bits",
           "INPUT_BAD_AMOUNT", "INPUT_UNKNOWN_TAX_ITEM", "INPUT_AMOUNT_OVERFLOW", "INPUT_LINE_MISMATCH"),
        _c("tax_items", "more than 6 distinct tax items", "INPUT_TOO_MANY_TAX_ITEMS"),
        _c("total", "total is not the sum of the line amounts", "INPUT_TOTAL_MISMATCH"),
        _SESSION,
        _c("lock", "a lock reason stands (after the days before today were closed)", LOCK),
        _c("single_limit", "total above the single-invoice limit", "LOCK_SINGLE_LIMIT"),
        _c("cumulative_limit", "NORMAL: cumulative amount + total above the cumulative limit",
           "LOCK_CUMULATIVE_LIMIT"),
        _c("return_limit", "RETURN: cumulative returns + total above the return limit", "LOCK_RETURN_LIMIT"),
        _c("original", "RETURN: ref_number is no NORMAL invoice in the detail, or the returns against it "
           "would pass its total", "INPUT_BAD_REFERENCE"),
        _c("detail_full", "the invoice detail ring has no room (a daily close frees it)", "FM_FULL"),
        _CARD, _APPEND,
    )),
    CommandRules("GET_DOCUMENT", _states("INPUT_NOT_FOUND", OK, OK, OK), (
        _c("no_journal", "no fiscal memory mounted", "FM_DAMAGED"),
        _c("not_found", "no invoice with this number in the detail (0: no invoice at all)", "INPUT_NOT_FOUND"),
    ), "Number 0 is the last invoice issued; a number the ring reused is INPUT_NOT_FOUND."),
    CommandRules("DAILY_CLOSE", _states("LOCK_NOT_INITIALIZED", OK, OK, "LOCK_FM_DAMAGED"), (
        *_FISCAL_GATE,
        _c("fiscal_missing", "no fiscal card in the SAM slot", "CARD_FISCAL_MISSING"),
        _CARD, _APPEND,
    ), "Closes every day after the last closed one through today, zero days included; with nothing to "
       "close it answers OK with first 0, last 0, count 0."),
    CommandRules("DECLARE", _states("LOCK_NOT_INITIALIZED", OK, OK, "LOCK_FM_DAMAGED"), (
        *_FISCAL_GATE,
        _c("pending", "a declaration waits for clear-unlock", "STATE_DECLARATION_PENDING"),
        _c("bad_end", "end is not 0 and not a calendar date", "INPUT_BAD_DATE"),
        _c("nothing", "no closed day since the last declaration / end after the last closed day or not after "
           "the last declared end", "STATE_NOTHING_TO_DECLARE", "INPUT_BAD_RANGE"),
        _c("fiscal_missing", "no fiscal card in the SAM slot", "CARD_FISCAL_MISSING"),
        _USER, _CARD, _APPEND,
    ), "Days before today are closed first (when the fiscal card is in), so yesterday can be declared "
       "without a DAILY_CLOSE."),
    CommandRules("CLEAR_UNLOCK", _states("LOCK_NOT_INITIALIZED", OK, OK, "LOCK_FM_DAMAGED"), (
        *_FISCAL_GATE,
        _c("not_declared", "no declaration waits for clear-unlock", "STATE_NOT_DECLARED"),
        _USER,
        _c("unprocessed", "the user card still holds the declaration unprocessed, or no control data for "
           "this machine (the bureau has not cleared it)", "STATE_DECLARATION_PENDING"),
        _c("mac", "the fiscal card refused this control data before / has one MAC try left and flags lack "
           "CONFIRM_MAC", "CARD_MAC", "CARD_MAC_LAST_TRY"),
        _SESSION,
        _c("card_mac", "the fiscal card refuses the control data's MAC", "CARD_MAC", "CARD_LOCKED"),
        _APPEND,
    )),
    CommandRules("READ_JOURNAL", ALWAYS, (
        _c("no_journal", "no fiscal memory mounted", "FM_DAMAGED"),
        _c("offset", "offset past the stream's end (offset == total gives no data)", "INPUT_BAD_RANGE"),
    ), "length is clipped, never refused: the reply carries min(length, READ_JOURNAL_MAX, total - offset) "
       "bytes."),
    CommandRules("INSPECT", _states("LOCK_NOT_INITIALIZED", OK, OK, "LOCK_FM_DAMAGED"), (
        _DAMAGED, _NEW, _SESSION, *_MGMT,
        _c("rights", "the management card lacks the inspect right", "CARD_SECURITY"),
    ), "Read-only, but it logs one INSPECTION event tagged with the request's RID; a retry with the same "
       "RID logs no second one."),
    CommandRules("REPORT", _states("LOCK_NOT_INITIALIZED", OK, OK, "LOCK_FM_DAMAGED"), (
        _DAMAGED, _NEW,
        _c("kind", "kind is not X, Z or PERIOD (X is answered here: its start and end are ignored)",
           "INPUT_BAD_KIND"),
        _c("dates", "start (Z), or start and end (PERIOD), not calendar dates, or end before start",
           "INPUT_BAD_DATE"),
        _c("none", "no DAILY record dated in the range", "INPUT_NOT_FOUND"),
    )),
)

BY_NAME = {rules.name: rules for rules in RULES}


def first_error(command: str, failing: set[str]) -> tuple[str, ...]:
    """The errors of the first check in `command`'s order (link checks first) among `failing` keys."""
    for check in LINK_CHECKS + BY_NAME[command].checks:
        if check.key in failing:
            return check.errors
    raise KeyError("no such check among %s" % sorted(failing))
