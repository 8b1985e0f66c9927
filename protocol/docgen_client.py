"""docs/PROTOCOL.md sections for an independent implementer (protocol.docgen calls these): the facts a
client and a read-out verifier need, each taken from its one definition, the read-out layouts, and a
walkthrough with real bytes."""

from __future__ import annotations

from typing import Callable

import construct as cs

from . import commands, errors, frame, journal_format, records, status, types

# What a factory-new till answers to GET_STATUS at 2026-01-05 09:00:00 (a simulator: NON_FISCAL).
# tests/test_protocol_states.py checks that the firmware answers exactly these bytes.
SAMPLE_MACHINE_NO = "4401000000000001"
SAMPLE_STATUS_RID = 1
SAMPLE_STATUS_NEW = dict(
    state=status.STATE_NEW, date=20260105, time=90000, lock_reasons=1 << 0, warnings=1 << 6, deadline=0,
    days_to_deadline=commands.NO_DEADLINE_DAYS, single_limit=0, amount_left=0, return_left=0, roll_code="",
    roll_next=0, roll_end=0, invoices_left=0, journal_permille=0, last_number=0, last_declared_end=0,
    last_rid=0, damage_kind=0, damage_sector=0xFFFF, damage_offset=status.DAMAGE_NONE_FIELD,
    damage_index=status.DAMAGE_NONE_FIELD,
)


def sample_status_exchange() -> tuple[bytes, bytes]:
    """(request frame, reply frame) of the walkthrough's GET_STATUS."""
    code = commands.BY_NAME["GET_STATUS"].code
    payload = commands.StatusReply.build(SAMPLE_STATUS_NEW)
    return frame.request(code, SAMPLE_STATUS_RID), frame.reply(code, SAMPLE_STATUS_RID, 0, payload)


def _hex(data: bytes) -> str:
    return data.hex(" ")


def _err(name: str) -> str:
    return "%s (0x%04X)" % (name, errors.BY_NAME[name].code)


def answers() -> list[str]:
    """'Answers for implementers': one bullet per question a client writer would otherwise guess."""
    v = commands.PROTOCOL_VERSION
    digest_example = records.request_digest(commands.BY_NAME["DAILY_CLOSE"].code, b"")
    o = ["## Answers for implementers", "",
         "Every value below is printed from the definition named with it.", ""]
    o += [
        "- **Till state** (`GET_STATUS.state`, protocol.status.STATES): " +
        ", ".join("%d %s" % kv for kv in sorted(status.STATES.items())) +
        ".  Locks are separate (`lock_reasons`); see \"States and check order\" for what each command "
        "does in each state.",
        "- **protocol_version** (commands.PROTOCOL_VERSION): u16, major in the high byte, minor in the low "
        "byte: 0x%04X is %d.%d.  A 1.0 host's LOAD_ROLL and CLEAR_UNLOCK carry no flags byte: an empty "
        "payload is read as flags 0." % (v, v >> 8, v & 0xFF),
        "- **Payload limits** (frame.MAX_PAYLOAD): a frame carries at most %d payload bytes either way; "
        "GET_INFO reports the same in `max_payload`.  A frame announcing more fails the header check and is "
        "dropped unanswered.  READ_JOURNAL returns at most READ_JOURNAL_MAX = %d data bytes; a larger "
        "`length` is clipped, never refused; `offset` past `total` is %s."
        % (frame.MAX_PAYLOAD, commands.READ_JOURNAL_MAX, _err("INPUT_BAD_RANGE")),
        "- **days_to_deadline** (commands.NO_DEADLINE_DAYS): s16, deadline minus today in days, negative "
        "once past, clamped to -32768..32766; 0x%04X (%d) means \"no deadline\": not initialized, or the "
        "clock is invalid." % (commands.NO_DEADLINE_DAYS, commands.NO_DEADLINE_DAYS),
        "- **Request KIND and STATUS** (protocol.frame): a request has KIND 0x%02X and STATUS 0.  The till "
        "answers only KIND 0x%02X frames: replies and keep-alives it receives (an echo on a loopback line) "
        "are ignored; it does not read a request's STATUS.  A reply has KIND 0x%02X and echoes COMMAND and "
        "RID; a non-OK reply has an empty payload." % (frame.KIND_REQUEST, frame.KIND_REQUEST, frame.KIND_REPLY),
        "- **RequestTag** (records.RequestTag, 8 bytes, big-endian): `rid` u32, the request's RID; `digest` "
        "u32 = CRC-32 (zlib) of the command byte followed by the request payload as sent "
        "(records.request_digest).  DAILY_CLOSE with an empty payload: digest 0x%08X.  Records the till "
        "writes on its own (back-filled days, boot events) carry rid 0." % digest_example,
        "- **Text** (protocol.types): host-link text (`cashier`, `payer`, line `name`, `model`, `fw_version`) "
        "is UTF-8 with a u8 length prefix: at most 255 bytes.  Fixed fields are NUL-padded: digits fields "
        "(machine, invoice code, taxpayer number) ASCII, names UTF-8; trailing NULs are not part of the "
        "value.  Text that is not UTF-8 (or not ASCII in a digits field) is %s; this firmware never sends "
        "INPUT_BAD_TEXT.  Cashier, payer and line names are printed, not stored: fiscal memory keeps the "
        "per-tax-item sums." % _err("LINK_BAD_PAYLOAD"),
        "- **Invoice lines** (commands.MAX_LINES, types.TAX_ITEMS): NORMAL and RETURN carry 1..%d lines "
        "(the u8 count allows 255: above %d is INPUT_TOO_MANY_LINES) with at most %d distinct tax items; VOID "
        "carries none, total 0, ref_number 0.  The whole request must still fit MAX_PAYLOAD."
        % (commands.MAX_LINES, commands.MAX_LINES, types.TAX_ITEMS),
        "- **Quantity scale** (commands.line_amount): `quantity` in thousandths of a unit, `unit_price` in "
        "fen per unit, `amount` = (quantity x unit_price + 500) // 1000: 2.5 kg at 3.99 is quantity 2500, "
        "unit_price 399, amount %d.  Quantity 0 or amount 0 is INPUT_BAD_AMOUNT." % commands.line_amount(2500, 399),
        "- **REPORT parameters** (status.REPORT_KINDS): X ignores `start` and `end` and answers the open "
        "day (start = the day with unclosed invoices, or today; end = today); Z reads `start` only (the "
        "reply's end is start); PERIOD reads both, inclusive, from the DAILY records.  Z and PERIOD with "
        "no DAILY record in range are INPUT_NOT_FOUND.",
        "- **ROLL_USAGE** (records.RollUsageRecord): written right after the INVOICE record that takes the "
        "roll's last number, by the same request, untagged; never at LOAD_ROLL (a roll with numbers left "
        "cannot be replaced: STATE_ROLL_LOADED).  If that write fails the invoice stands and boot recovery "
        "appends it.",
        "- **Byte order**: the host link, the records (protocol/records.py) and the cards are big-endian; "
        "the journal's envelopes, sector headers and read-out stream header (protocol/journal_format.py) "
        "are little-endian.  A record body inside an envelope is big-endian.",
        "- **device_id** (journal_format.device_id): the 16-digit machine number packed as 8 bytes of BCD, "
        "two digits a byte, first digit high: %s is `%s`." % (
            SAMPLE_MACHINE_NO, _hex(journal_format.device_id(SAMPLE_MACHINE_NO))),
        "- **Dates and times** (types.BcdDate, types.BcdTime): BCD CCYYMMDD and hhmmss; 0 is \"no date\".  "
        "The till takes years 2000..2099 and real calendar days (20260230 is INPUT_BAD_DATE); bad BCD "
        "digits are LINK_BAD_PAYLOAD.",
        "- **Fiscal code** (税控码, InvoiceRecord.fiscal_code, %d bytes): printed as 20 digits, the two "
        "big-endian u32 halves each zero-padded to 10 digits." % types.FISCAL_CODE_LEN,
        "- **fw_hash** (GET_INFO): SHA-256 over the firmware package's .py modules in sorted name order, "
        "each contributing its file name, a NUL, its length (u32 big-endian) and its bytes; a frozen build "
        "reports the hash of its sources.",
        "- **The first request after boot** runs the back-fill of the days missed while the till was off "
        "(one signed DAILY record per day) before it is answered, so it may take long and sends keep-alives.",
        "- **Thresholds** behind the warnings and locks (DEADLINE_NEAR days, ROLL_LOW invoices, the 75 % "
        "and 90 % marks, the service life) are the rules catalogue's (protocol/rules.py, docs/RULES.md).",
        "- **Damage fields** (status.DAMAGE_KINDS): `damage_kind` 0 when none; `damage_sector` 0xFFFF and "
        "`damage_offset`, `damage_index` 0x%08X when not known." % status.DAMAGE_NONE_FIELD,
        "",
    ]
    return o


_LE = {"<B": "u8", "<H": "u16 LE", "<L": "u32 LE", "<I": "u32 LE"}
_CRC_COVERS = (
    ("StreamHeader", "bytes 0..%d (everything before it)" % (journal_format.STREAM_HDR_SIZE - 5)),
    ("FiscalSectorHeader", "bytes 0..%d (everything before it)" % (journal_format.FISCAL_HDR_SIZE - 5)),
    ("RingSectorHeader", "bytes 0..%d; `successor` (byte %d) is outside it: it is programmed later"
     % (journal_format.RING_HDR_SIZE - 6, journal_format.RING_HDR_SIZE - 1)),
    ("FiscalRecord", "`type` through `body` (%d + length bytes); `commit` is outside it"
     % (journal_format.FISCAL_REC_OVERHEAD - 5)),
    ("RingRecord", "`type` through `body` (%d + length bytes); `commit` is outside it"
     % (journal_format.RING_REC_OVERHEAD - 5)),
)


def journal_layouts(table: Callable[[cs.Construct], list[str]]) -> list[str]:
    """The read-out stream and journal layouts, little-endian, with what each CRC covers."""
    o = ["## Read-out stream and journal layouts", "",
         "READ_JOURNAL serves a byte stream: the stream header, then `fiscal_images` fiscal sector images "
         "(sector 0 first), then `ring_images` ring sector images (oldest first), each `sector_size` bytes "
         "exactly as on flash, so `total` = %d + images x sector_size.  Integers here are little-endian; "
         "every CRC is CRC-32 (zlib), stored little-endian.  docs/FISCAL_MEMORY.md explains the format and "
         "the recovery rules; the chain is head0 = SHA-256(\"FJ-genesis\" || device_id || format_id), "
         "head' = SHA-256(head || ChainInput) over every record in index order."
         % journal_format.STREAM_HDR_SIZE, ""]
    for name, covers in _CRC_COVERS:
        o += ["### %s" % name, ""] + table(getattr(journal_format, name)) + ["`crc` covers " + covers + ".", ""]
    o += ["### ChainInput", "", "What one chain step hashes after the previous head.", ""]
    o += table(journal_format.ChainInput)
    o += ["A record is committed when its `commit` byte has at most %d bits set (programmed 0x00).  Type "
          "codes: %s." % (journal_format.COMMIT_MAX_BITS, ", ".join(
              "0x%02X %s" % (code, name) for code, (name, _) in sorted(records.RECORDS.items()))), ""]
    return o


def walkthrough() -> list[str]:
    """'Writing a client': framing, a GET_STATUS exchange, retries, keep-alives, a verified read-out."""
    req, rep = sample_status_exchange()
    ka = frame.build_frame(frame.KIND_KEEPALIVE, commands.BY_NAME["DAILY_CLOSE"].code, 8, 0, b"")
    close = frame.request(commands.BY_NAME["DAILY_CLOSE"].code, 8)
    o = ["## Writing a client", "",
         "### 1. Framing", "",
         "GET_STATUS (0x02) with RID %d and no payload:" % SAMPLE_STATUS_RID, "", "```", _hex(req), "```", "",
         "`a5` SOF, `%02x` KIND request, `02` COMMAND, `00 00 00 01` RID, `00 00` STATUS, `00 00` LENGTH, "
         "`%02x` HCRC = CRC-8 of the 11 bytes before it, then no payload, then `%s` = CRC-32 of bytes 0..11, "
         "big-endian." % (frame.KIND_REQUEST, req[11], _hex(req[12:16])), "",
         "### 2. A GET_STATUS exchange", "",
         "A factory-new simulator (NON_FISCAL) at 2026-01-05 09:00:00 answers:", "", "```", _hex(rep), "```", "",
         "`52` reply, `02 00 00 00 01` the echoed command and RID, `00 00` OK, `00 %02x` = %d payload bytes "
         "(StatusReply), HCRC `%02x`; the payload starts `00` state NEW, `20 26 01 05` `09 00 00` the clock "
         "(BCD), `00 00 00 01` lock NOT_INITIALIZED, `00 00 00 40` warning NON_FISCAL, `00 00 00 00` no "
         "deadline, `7f ff` days_to_deadline \"none\"; it ends with damage_kind 0, damage_sector `ff ff`, "
         "offset and index `ff ff ff ff`, then the CRC-32." % (rep[10], rep[10], rep[11]), "",
         "### 3. Request ids and retries", "",
         "1. At start, send GET_STATUS (any RID: read-only requests are never remembered) and take "
         "`last_rid`; the next mutating request uses last_rid + 1, every new one a larger RID.",
         "2. Send the request and wait for a reply with the same COMMAND and RID; drop any other frame.",
         "3. No reply within your timeout (the frame or its reply was lost): send the *same bytes* again. "
         "If the first copy ran, the till answers the remembered reply byte for byte and runs nothing; "
         "if not, it runs now.  Retry as often as needed; it never runs twice.",
         "4. LINK_RID_STALE: another host (or your lost counter) went ahead; nothing ran.  GET_STATUS, "
         "then send the request again with last_rid + 1.  LINK_RID_REUSED: that RID ran with another "
         "request; use a fresh one.",
         "5. Any other error: the request did not take effect and is not remembered; fix the cause "
         "(GET_STATUS shows locks) and send again, with the same or a fresh RID.  What a refusal still "
         "leaves behind: a MAC the fiscal card refused (CARD_ROLL_REFUSED, CARD_MAC) counts against its "
         "tries and is logged as an event, the refused roll taken off the user card; SET_TIME refused "
         "FM_DAMAGED has set the clock (\"States and check order\").",
         "6. After a host crash, GET_DOCUMENT number 0 returns the last invoice; its `request.rid` tells "
         "whether your last ISSUE_INVOICE ran.", "",
         "### 4. Keep-alives", "",
         "A long request (here DAILY_CLOSE, RID 8, after months off: `%s`) may be answered after several "
         "keep-alives, one at least every %d ms:" % (_hex(close), frame.KEEPALIVE_INTERVAL_MS), "",
         "```", _hex(ka), "```", "",
         "KIND `4b`, the request's COMMAND and RID, STATUS 0, no payload.  Restart the reply timer on each "
         "keep-alive of the pending request; keep an overall hang guard; never treat it as a reply.", "",
         "### 5. A read-out, verified step by step", "",
         "1. READ_JOURNAL offset 0, length READ_JOURNAL_MAX; the reply's `total` is the stream length. "
         "Repeat with offset += len(data) until offset == total (offset == total gives empty data).",
         "2. Read offset 0 length %d again at the end: `next_index` and `chain_head` unchanged means "
         "nothing was appended while you read; else start again." % journal_format.STREAM_HDR_SIZE,
         "3. Stream header: magic `FJRS`, version %d, its CRC; total == %d + (fiscal_images + ring_images) "
         "x sector_size; device_id == device_id(GET_INFO.machine_no); flags bit 0 set means the till "
         "itself reports damage (GET_STATUS damage fields)." % (journal_format.VERSION,
                                                                journal_format.STREAM_HDR_SIZE),
         "4. Each image: a sector header (magic `FJ`, area 'F' for the first fiscal_images images, then "
         "'R'), its CRC, and the stream's device_id and format_id; fiscal `seq` equals the image's "
         "position, ring `seq` grows by one image to image.",
         "5. Records, from the header's end: a type byte 0xFF means free space; otherwise the envelope "
         "(FiscalRecord in fiscal sectors, RingRecord in ring sectors), its CRC, its commit byte.  An "
         "uncommitted record is torn: skip it by its length.  docs/FISCAL_MEMORY.md §6 says what every "
         "other finding means.",
         "6. Order: fiscal records carry their index; an invoice's index follows from the fiscal records "
         "(docs/FISCAL_MEMORY.md §4).  The newest record's index + 1 must equal `next_index`; "
         "`fiscal_records` and `invoices` count every record ever appended (the ring may have reused the "
         "oldest detail, so fewer invoices may be in the stream).",
         "7. Chain: from genesis (or from an anchor: a fiscal record's `prev_head`, a ring header's `head`, "
         "where the ring has reused older detail) hash every record in index order; each anchor must match "
         "the running head, and the last head must equal the header's `chain_head`.",
         "8. Bodies: decode each by its type code with the record layouts (\"Fiscal-memory records\", "
         "big-endian).  A DAILY signature is the fiscal card's over the day's date and sums "
         "(DailyCollectSignData), a DECLARATION's over its period and sums (docs/CRYPTO.md).  The "
         "reference auditor is `audit_stream` in protocol/.", "",
         ]
    return o
