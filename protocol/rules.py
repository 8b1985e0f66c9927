"""The rules catalogue: every fiscal rule once, with its ID, its text, its source and its thresholds.

A rule's ID (``R-...``) is how code, cases and documents name it.  Code that enforces or verifies a rule
carries the ID in a comment or docstring (a *tag*); a conformance case lists the rules it checks under
``rules:``; a bureau rule the device never sees is held by tests that carry its tag.  ``docs/RULES.md`` is
generated from this table and the tags (``python -m protocol.rulesdoc``), and a test fails when a rule has
no case or a tag names no rule.

Thresholds live here and nowhere else: ``protocol.codegen`` writes them into the firmware's ``codes.py``
as ``RULE_<NAME>`` constants, and the host side imports them from this module.

Sources: ``seed X(Y)`` is a paragraph of 国税发〔2004〕108号 (``../shared/seed/``); ``domain §N`` is a
section of docs/DOMAIN.md; ``ours`` is a choice this project made and documents (a deployment may change
a threshold by changing this table and regenerating).
"""

from __future__ import annotations

import re
from typing import NamedTuple

# A rule ID: "R-", then words of capitals and digits joined by "-", the first starting with a letter (so
# "F+R-1" in a comment is no tag).
TAG = re.compile(r"\bR-[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*\b")


class Rule(NamedTuple):
    id: str
    title: str
    text: str
    source: str
    thresholds: dict[str, int] = {}


# Thresholds (name -> value).  Each is owned by exactly one rule below.
THRESHOLDS: dict[str, int] = {
    "WARN_DEADLINE_DAYS": 7,  # DEADLINE_NEAR when 0 <= days to deadline <= this
    "WARN_LIMIT_PERCENT": 75,  # AMOUNT_75 / RETURN_75 at or above this share of the limit
    "WARN_FM_PERMILLE": 900,  # FM_90 when a fiscal-memory class is at or above this use
    "FM_FULL_PERMILLE": 1000,  # FM_FULL lock when a fiscal class (or the fiscal area) is full
    "WARN_ROLL_INVOICES": 20,  # ROLL_LOW when 0 < invoices left <= this
    "SERVICE_LIFE_YEARS": 5,  # SERVICE_LIFE lock from the initialization date plus this many years
    "CARD_MAC_TRIES": 3,  # MAC refusals before the fiscal card locks itself for good
    "CARD_PIN_TRIES": 3,  # wrong fiscal PINs before the card blocks the PIN (63C2, 63C1, 6983)
    "SURCHARGE_PER_10K_PER_DAY": 5,  # 滞纳金: 0.05 % of the unpaid tax per day late
    "FILING_DAY_OF_MONTH": 15,  # 征期: a period is filed by this day of the month after its end
}

RULES: tuple[Rule, ...] = (
    # ---------------------------------------------------------------- initialization
    Rule("R-INIT-ONCE", "initialization once, by the bureau",
         "A till is initialized once, with the fiscal and user cards the bureau issued for it; a second "
         "initialization is refused, and until the first the till issues nothing (lock NOT_INITIALIZED).",
         "seed 二(七) (严把税控初始化关); domain §3.1"),
    Rule("R-INIT-CHECKS", "initialization checks the cards against the machine",
         "Initialization checks the machine number on the fiscal card, the pairing listed on the user card, "
         "and both cards' validity dates before it binds the three (GET_REGISTER_NB, REGISTER_SIGN, "
         "TERMINAL_REGISTER).",
         "domain §3.1"),
    Rule("R-CARD-VALIDITY", "an expired card is refused",
         "A fiscal, user or management card is accepted only between its validity dates, judged by the "
         "till's own clock in every state (CARD_EXPIRED), even before the fiscal card has seen a date.",
         "domain §2 (EF02 validity dates); ours"),
    Rule("R-CARD-ROLES", "each card does its own job only",
         "The fiscal card sits in the internal slot and nothing else may stand in for it; the user card "
         "carries declarations, control data and rolls; the management card inspects and sets the clock "
         "and can stand in for neither.",
         "domain §1"),
    # ---------------------------------------------------------------- locks
    Rule("R-LOCK-DEADLINE", "the till locks itself after the filing deadline",
         "Once today is after the invoice deadline in the fiscal card's control data, no invoice is issued "
         "until clear-unlock writes a new deadline.",
         "seed 二(七) (清零解锁后才允许其重新启用); domain §4"),
    Rule("R-LOCK-SINGLE-LIMIT", "an invoice above the single-invoice limit is refused",
         "An invoice whose total exceeds the single-invoice limit of the control data is refused; nothing "
         "is written.",
         "domain §2 (EF01), §4"),
    Rule("R-LOCK-CUMULATIVE", "the cumulative invoice limit locks issuing",
         "When the cumulative normal amount since the last clear-unlock reaches the cumulative limit, "
         "issuing stops; an invoice that would pass the limit is refused.",
         "seed 二(七) (发票限额限量); domain §4"),
    Rule("R-LOCK-RETURN-LIMIT", "the cumulative return limit locks issuing",
         "When the cumulative return amount reaches the return limit (if one is set), issuing stops; a "
         "return that would pass the limit is refused.",
         "domain §4"),
    Rule("R-LOCK-NO-ROLL", "invoices only from a roll the bureau sold",
         "Invoice numbers come only from the roll loaded from the user card, one roll at a time; with no "
         "roll or none left the till is locked.",
         "seed 二(七) (验旧售新); domain §3.2, §4"),
    Rule("R-LOCK-FM-FULL", "full fiscal memory locks issuing",
         "When a fiscal record class or the fiscal area is full, issuing stops (invoice detail is the one "
         "class that rolls over).",
         "domain §4, §5", {"FM_FULL_PERMILLE": THRESHOLDS["FM_FULL_PERMILLE"]}),
    Rule("R-LOCK-FISCAL-CARD", "issuing needs this till's registered fiscal card",
         "A missing, unregistered or foreign fiscal card locks the till.",
         "domain §4"),
    Rule("R-LOCK-USER-CARD", "a user card of another taxpayer is refused",
         "A user card that does not list this till (EF06) belongs to another taxpayer: nothing is read "
         "from it or written to it (CARD_FOREIGN_TAXPAYER).",
         "domain §4"),
    Rule("R-LOCK-PIN", "a blocked fiscal PIN locks the till",
         "The fiscal card blocks its PIN after the threshold's wrong PINs in a row; a blocked PIN locks "
         "the till, and only the bureau resets it.",
         "domain §4, §7.10", {"CARD_PIN_TRIES": THRESHOLDS["CARD_PIN_TRIES"]}),
    Rule("R-PIN-ROLLS", "the fiscal PIN rolls on every use",
         "VERIFY_FISCAL_PIN returns a new PIN each time and the till keeps the newest in non-volatile "
         "memory; a lost reply must not lose it (the card accepts the previous PIN once more and answers "
         "the current one without rolling).",
         "domain §2 (VERIFY_FISCAL_PIN)"),
    Rule("R-LOCK-MAC", "MAC refusals are limited and lock the card",
         "The fiscal card refuses bad MAC data a limited number of times and then locks itself for good; "
         "the till counts the tries, never resends refused data, and needs a confirmation for the last try.",
         "domain §4, §7.10", {"CARD_MAC_TRIES": THRESHOLDS["CARD_MAC_TRIES"]}),
    Rule("R-LOCK-SERVICE-LIFE", "the service life ends issuing",
         "From the initialization date plus the service life the till issues nothing.",
         "domain §4 [OPEN: one vendor's figure]; ours",
         {"SERVICE_LIFE_YEARS": THRESHOLDS["SERVICE_LIFE_YEARS"]}),
    Rule("R-LOCK-FM-DAMAGED", "damaged fiscal memory locks issuing and is reported",
         "Fiscal memory that fails its checks (CRC, sequence, chain, anchors) locks issuing; GET_STATUS "
         "names the damage, and reading out still works.",
         "domain §5; ours"),
    Rule("R-BOOT-ALWAYS", "damaged media never stops the till booting",
         "Whatever its flash, nvram and cards contain, the till boots and serves its link: normal, or locked "
         "with the damage named, so the bureau can still read it out.",
         "ours (FISCAL_MEMORY.md §11)"),
    Rule("R-LOCK-CLOCK-FAULT", "a clock behind the newest record locks issuing",
         "When the clock reads earlier than the newest record's date and time, or an impossible date, the "
         "till issues nothing until the clock is set forward with the management card.",
         "domain §4"),
    Rule("R-LOCKED-STILL-SERVES", "a locked till still closes, declares and unlocks",
         "While locked, daily closes, declaration, clear-unlock, inspection and reports still work.",
         "domain §4"),
    Rule("R-LOCKS-ARE-CONDITIONS", "a lock is a condition, not a state",
         "Each lock is computed from its cause at the moment of asking; when the cause is gone (card back, "
         "roll loaded, clock set forward, clear-unlock done) the lock is gone too.",
         "domain §4; ours"),
    # ---------------------------------------------------------------- warnings
    Rule("R-WARN-DEADLINE", "warn before the deadline",
         "GET_STATUS warns DEADLINE_NEAR when the deadline is at most the threshold's days away.",
         "domain §7.3; ours", {"WARN_DEADLINE_DAYS": THRESHOLDS["WARN_DEADLINE_DAYS"]}),
    Rule("R-WARN-LIMITS", "warn at 75 % of a limit",
         "GET_STATUS warns AMOUNT_75 / RETURN_75 when the cumulative amount reaches the threshold share "
         "of its limit.",
         "domain §7.3", {"WARN_LIMIT_PERCENT": THRESHOLDS["WARN_LIMIT_PERCENT"]}),
    Rule("R-WARN-FM", "warn at 90 % of fiscal memory",
         "GET_STATUS warns FM_90 when a fiscal-memory class is at or above the threshold.",
         "domain §7.3", {"WARN_FM_PERMILLE": THRESHOLDS["WARN_FM_PERMILLE"]}),
    Rule("R-WARN-ROLL-LOW", "warn when the roll runs low",
         "GET_STATUS warns ROLL_LOW when few invoices are left in the loaded roll.",
         "domain §7.3; ours", {"WARN_ROLL_INVOICES": THRESHOLDS["WARN_ROLL_INVOICES"]}),
    Rule("R-WARN-DECLARATION-PENDING", "a pending declaration is shown until clear-unlock",
         "While a declaration waits for the bureau's clear-unlock data the till warns DECLARATION_PENDING "
         "and CLEAR_UNLOCK answers 'complete it at the tax bureau'.",
         "seed 二(七); domain §3.7"),
    Rule("R-NON-FISCAL", "test keys make every document NON-FISCAL",
         "A till or card with TEST keys says NON-FISCAL in GET_STATUS and on every printed document.",
         "domain §7.7"),
    Rule("R-STATUS-LEFT", "the till reports what is left before it locks",
         "GET_STATUS reports the days to the deadline, the amounts left under each limit and the invoices "
         "left in the roll, current after every request.",
         "domain §7.3"),
    Rule("R-DEVICE-IDENTITY", "the till names itself and its firmware",
         "GET_INFO names the device, the protocol version and a hash of the running firmware, so a lab can "
         "record what it certified.",
         "domain §7.10"),
    # ---------------------------------------------------------------- issuing
    Rule("R-INVOICE-NUMBERING", "invoice numbers run consecutively through the roll",
         "Each invoice (normal, return or void) takes the next number of the loaded roll; no number is "
         "skipped or used twice.",
         "domain §3.3"),
    Rule("R-INVOICE-FISCAL-CODE", "every invoice carries the fiscal card's 税控码",
         "The fiscal card returns 8 bytes for each invoice, printed as a 20-digit 税控码 that a consumer "
         "or the bureau can check.",
         "seed 二(七) (以票控税, 有奖发票); domain §3.3"),
    Rule("R-INVOICE-RETURN", "a return names a normal invoice and does not exceed it",
         "A return (红票) must name a normal invoice of this till and may not exceed what is left of it.",
         "domain §3.3; ours"),
    Rule("R-INVOICE-VOID", "a void spends a number and no amount",
         "A void invoice (废票) uses the next number and carries no amount.",
         "domain §3.3"),
    Rule("R-PRINTED-INVOICE", "the printed invoice carries every field",
         "The printed roll invoice shows the invoice code and number, machine number, taxpayer, date and "
         "time, cashier, payer, the lines, the total in figures and in Chinese capitals (大写) and the "
         "20-digit 税控码 as two 10-digit halves; a return prints negative amounts and names the original, "
         "a void prints 作废.",
         "domain §3.3; ours"),
    Rule("R-INVOICE-LINES", "line amounts are computed one way",
         "A line's amount is (quantity x unit price + 500) // 1000 in fen; an invoice has at most "
         "MAX_LINES lines and six tax items (protocol.types.TAX_ITEMS), each registered on the fiscal card.",
         "domain §2; ours"),
    Rule("R-INPUT-CHECKED", "a refused request changes nothing",
         "Every request is checked before its first write: amounts, totals, kinds, references, tax items, "
         "line counts, text and calendar dates (Gregorian, leap years included), then state, locks and "
         "cards; a refused request gets its code (INPUT_* for bad input) and the till is as before.",
         "ours (PROTOCOL.md §Conventions)"),
    # ---------------------------------------------------------------- days and declarations
    Rule("R-DAILY-EVERY-DAY", "every calendar day gets a signed daily record",
         "One signed DAILY record per calendar day, days without sales included, back-filled on power-up "
         "and before the first invoice of a new day; a closed day takes no more invoices.",
         "domain §3.4"),
    Rule("R-REPORTS", "reports come from fiscal memory and reset nothing",
         "The X report shows the open day's running totals without closing it; Z and period reports are "
         "summed from the signed daily records.",
         "domain §4 (reports); ours"),
    Rule("R-ROLL-USAGE", "a used-up roll leaves a usage record",
         "When the last number of a roll is spent the till appends a ROLL_USAGE record summarising the "
         "roll's normal, return and void invoices, also after a power cut in between.",
         "domain §5 (roll usage summaries); ours"),
    Rule("R-DECLARE-PERIOD", "a declaration covers the days since the last one",
         "DECLARE sums the daily records since the last declaration, has them signed (DECLARE_DUTY), "
         "writes them to the user card (DATA_COLLECT) and appends a declaration record.",
         "seed 一(一), 二(七); domain §3.5"),
    Rule("R-DECLARE-DELIVERED", "a declaration is done only when the user card holds it",
         "The declaration record is appended only after DATA_COLLECT wrote it to this taxpayer's user card; "
         "until the bureau's clear-unlock arrives it stays pending across power cycles and card swaps, and "
         "no unfiled data is discarded.",
         "domain §3.5, §7.4"),
    Rule("R-CLEAR-UNLOCK", "clear-unlock only from the bureau's data for this till and period",
         "CLEAR_UNLOCK applies only control data the bureau wrote to the user card for this till and the "
         "declared period: PIN, UPDATE_CONTROLS, counters reset; a replayed or foreign token is refused.",
         "seed 二(七) (清零解锁); domain §3.7, §7.4"),
    Rule("R-CLOCK-FORWARD", "the clock never goes back; changing it needs the management card",
         "SET_TIME needs a genuine management card and never sets the clock earlier than the newest "
         "record.",
         "domain §4"),
    Rule("R-CLOCK-VALID", "no dated record from an impossible clock",
         "An operation that writes a dated record is refused (CLOCK_INVALID) while the clock reads an "
         "impossible date or time; only SET_TIME, with the management card, mends it.",
         "ours (PROTOCOL.md, error table)"),
    Rule("R-INSPECTION", "inspection with the management card",
         "INSPECT reads the fiscal data for an inspector holding a genuine, valid management card and "
         "records the inspection once.",
         "domain §1; ours"),
    # ---------------------------------------------------------------- fiscal memory and link
    Rule("R-FM-APPEND-ONLY", "fiscal memory is append-only and checkable",
         "Records are only appended, each with its CRC, sequence and chain; a read-out lets anyone verify "
         "every record; truncation and rollback are detected.",
         "seed 二(七) (如实录入经营数据); domain §5, §7.2"),
    Rule("R-EXACTLY-ONCE", "a request is carried out at most once",
         "Every mutating request carries a request id; a repeated id gets the stored reply, a stale id is "
         "refused, and GET_DOCUMENT(0) names the last document.",
         "domain §7.1"),
    Rule("R-POWER-SAFE", "a power cut loses nothing and doubles nothing",
         "Each multi-step operation writes its intent first and boot recovery finishes or forgets it, so "
         "after any power cut the state equals that of the operation done once or not at all.",
         "domain §5, §7.1; ours"),
    Rule("R-LINK-FRAMING", "only whole, intact request frames are answered",
         "The till hunts for a frame start, checks the header CRC-8, the length and the CRC-32, answers each "
         "intact request frame once and nothing in a damaged or reply-kind frame; noise never stalls it.",
         "ours (PROTOCOL.md §Frames)"),
    Rule("R-LINK-KEEPALIVE", "a busy till is never silent",
         "While a request takes long (a multi-year back-fill) the till sends keep-alive frames at least every "
         "KEEPALIVE_INTERVAL_MS until the reply, so a host can tell busy from dead.",
         "domain §7.1; ours (PROTOCOL.md §Frames)"),
    # ---------------------------------------------------------------- the bureau
    Rule("R-WINDOW-COMPARE", "一窗式: declared income against the card's record",
         "At the window the declared income per tax item is compared with what the user card recorded: "
         "declared >= recorded -> the bureau writes clear-unlock data to the card.",
         "seed 一(一), 二(七)"),
    Rule("R-WINDOW-SHORTFALL", "a shortfall is corrected or referred",
         "Declared < recorded -> correction at once, or an explanation recorded and the case referred to the "
         "tax source department (约谈/核查); no clear-unlock.",
         "seed 二(七), 二(六)"),
    Rule("R-SALE-AFTER-CLEAR", "验旧售新: new rolls only after clear-unlock",
         "New blank invoice rolls are sold only after the old roll was checked and the till's period was "
         "cleared, within the taxpayer's quota.",
         "seed 二(七) (验旧售新, 限额限量供应)"),
    Rule("R-SURCHARGE", "late filing pays 滞纳金 that no one waives",
         "A declaration accepted after the filing day of the month after its period pays the surcharge per "
         "day late on the tax due, rounded once; no role can waive or reduce it.",
         "seed 一(二), 二(六); domain §3.6; ours (the filing day)",
         {"SURCHARGE_PER_10K_PER_DAY": THRESHOLDS["SURCHARGE_PER_10K_PER_DAY"],
          "FILING_DAY_OF_MONTH": THRESHOLDS["FILING_DAY_OF_MONTH"]}),
    Rule("R-VERIFY-RECORDS", "the bureau verifies every signature and MAC",
         "The bureau accepts a declaration only with a valid MAC and signature, and an audit verifies every "
         "record of a read-out and reports each finding without stopping.",
         "seed 二(七) (利用税控装置记录数据计核应征税额); domain §7.6"),
    Rule("R-ONE-HOUSEHOLD", "一户式: every bureau action is recorded per taxpayer",
         "Every state change at the bureau is an event in the taxpayer's append-only, chained event log.",
         "seed 五(三)"),
)

BY_ID: dict[str, Rule] = {r.id: r for r in RULES}


def threshold(name: str) -> int:
    """The one value of a threshold (KeyError for an unknown name: there is no default)."""
    return THRESHOLDS[name]


def _check() -> None:
    assert len(BY_ID) == len(RULES), "duplicate rule id"
    for r in RULES:
        assert TAG.fullmatch(r.id), r.id
        for name, value in r.thresholds.items():
            assert THRESHOLDS[name] == value, name
    owned = [n for r in RULES for n in r.thresholds]
    assert len(owned) == len(set(owned)), "a threshold owned twice"


_check()
