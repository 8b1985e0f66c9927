"""Every layout the till speaks, as schema.py layouts (a schema, or one kind such as ("X", schema)):
shared types, fiscal-memory records, host-link commands, card APDU data and card files.  Each mirrors
the Construct definition of the same name in protocol/ (types, records, commands, apdu, cardfiles);
tests prove each pair equal byte for byte, and tests/test_codec_agreement.py lists the pairs, so a
layout added on one side only fails the suite.
"""

# ---- protocol/types.py ------------------------------------------------------------------------------
_DIGITS_MACHINE = ("a", 16)
_CARD_NO = ("s", 8)
_CODE = ("a", 10)
_TAXPAYER_NO = ("a", 20)

CONTROLS = (("deadline", "D"), ("single_limit", "I"), ("cumulative_limit", "I"), ("return_limit", "I"))
TAX_ITEM = (("index", "B"), ("rate", "H"), ("code", ("a", 8)), ("name", ("u", 24)))
TAX_LINE_TOTALS = (("item", "B"), ("normal", "I"), ("returned", "I"))
TOTALS = (
    ("normal_count", "I"), ("return_count", "I"), ("void_count", "I"),
    ("normal_total", "I"), ("return_total", "I"),
    ("lines", ("A", 6, ("S", TAX_LINE_TOTALS))),
)
TAX_AMOUNT = (("item", "B"), ("amount", "I"))

# ---- protocol/records.py ----------------------------------------------------------------------------
REQUEST_TAG = (("rid", "I"), ("digest", "I"))
_REQ = ("request", ("S", REQUEST_TAG))
INIT_RECORD = (
    _REQ, ("date", "D"), ("time", "T"), ("machine_no", _DIGITS_MACHINE), ("fiscal_card_no", _CARD_NO),
    ("user_card_no", _CARD_NO), ("taxpayer_no", _TAXPAYER_NO), ("taxpayer_name", ("u", 40)),
    ("bureau_code", ("a", 12)), ("valid_from", "D"), ("valid_to", "D"), ("controls", ("S", CONTROLS)),
    ("tax_items", ("A", 6, ("S", TAX_ITEM))),
)
DAILY_RECORD = (_REQ, ("date", "D"), ("totals", ("S", TOTALS)), ("signature", ("s", 64)))
DECLARATION_RECORD = (
    _REQ, ("date", "D"), ("time", "T"), ("start", "D"), ("end", "D"), ("totals", ("S", TOTALS)),
    ("mac", ("s", 4)), ("signature", ("s", 64)),
)
CLEAR_UNLOCK_RECORD = (
    _REQ, ("date", "D"), ("time", "T"), ("period_end", "D"), ("sequence", "I"), ("controls", ("S", CONTROLS)),
)
ROLL_LOAD_RECORD = (_REQ, ("date", "D"), ("time", "T"), ("code", _CODE), ("start", "I"), ("end", "I"))
ROLL_USAGE_RECORD = (
    ("date", "D"), ("code", _CODE), ("start", "I"), ("end", "I"), ("normal", "I"), ("returned", "I"),
    ("voided", "I"), ("last_number", "I"),
)
INVOICE_RECORD = (
    _REQ, ("kind", "B"), ("code", _CODE), ("number", "I"), ("date", "D"), ("time", "T"), ("ref_number", "I"),
    ("total", "I"), ("lines", ("A", 6, ("S", TAX_AMOUNT))), ("fiscal_code", ("s", 8)),
)
EVENT_RECORD = (_REQ, ("date", "D"), ("time", "T"), ("event", "H"), ("arg", "I"))

# record type -> schema (codes.REC_*)
RECORDS = {
    0x01: INIT_RECORD, 0x02: DAILY_RECORD, 0x03: DECLARATION_RECORD, 0x04: CLEAR_UNLOCK_RECORD,
    0x05: ROLL_LOAD_RECORD, 0x06: ROLL_USAGE_RECORD, 0x07: INVOICE_RECORD, 0x08: EVENT_RECORD,
}

# ---- protocol/commands.py ---------------------------------------------------------------------------
EMPTY = ()
INFO_REPLY = (
    ("model", "p"), ("machine_no", _DIGITS_MACHINE), ("fw_version", "p"), ("fw_hash", ("s", 32)),
    ("protocol_version", "H"), ("capabilities", "I"), ("max_payload", "H"),
)
STATUS_REPLY = (
    ("state", "B"), ("date", "D"), ("time", "T"), ("lock_reasons", "I"), ("warnings", "I"),
    ("deadline", "D"), ("days_to_deadline", "h"), ("single_limit", "I"), ("amount_left", "I"),
    ("return_left", "I"), ("roll_code", _CODE), ("roll_next", "I"), ("roll_end", "I"),
    ("invoices_left", "I"), ("journal_permille", "H"), ("last_number", "I"), ("last_declared_end", "D"),
    ("last_rid", "I"), ("damage_kind", "B"), ("damage_sector", "H"), ("damage_offset", "I"), ("damage_index", "I"),
)
SET_TIME_REQUEST = (("date", "D"), ("time", "T"))
INITIALIZE_REQUEST = (("date", "D"), ("time", "T"))
INITIALIZE_REPLY = (
    ("machine_no", _DIGITS_MACHINE), ("fiscal_card_no", _CARD_NO), ("taxpayer_no", _TAXPAYER_NO),
    ("record", "I"),
)
FLAGS_REQUEST = (("flags", "B"),)
LOAD_ROLL_REPLY = (("code", _CODE), ("start", "I"), ("end", "I"))
INVOICE_LINE = (("tax_item", "B"), ("quantity", "I"), ("unit_price", "I"), ("amount", "I"), ("name", "p"))
ISSUE_INVOICE_REQUEST = (
    ("kind", "B"), ("ref_number", "I"), ("cashier", "p"), ("payer", "p"), ("total", "I"),
    ("lines", ("L", ("S", INVOICE_LINE))),
)
GET_DOCUMENT_REQUEST = (("number", "I"),)
DAILY_CLOSE_REPLY = (("first", "D"), ("last", "D"), ("count", "H"))
DECLARE_REQUEST = (("end", "D"),)
CLEAR_UNLOCK_REPLY = (("period_end", "D"), ("controls", ("S", CONTROLS)))
READ_JOURNAL_REQUEST = (("offset", "I"), ("length", "H"))
READ_JOURNAL_REPLY = (("offset", "I"), ("total", "I"), ("data", "g"))
INSPECT_REPLY = (
    ("machine_no", _DIGITS_MACHINE), ("fiscal_card_no", _CARD_NO), ("taxpayer_no", _TAXPAYER_NO),
    ("taxpayer_name", ("u", 40)), ("init_date", "D"), ("first_date", "D"), ("last_date", "D"),
    ("daily_count", "I"), ("declaration_count", "I"), ("invoice_count", "I"), ("journal_bytes", "I"),
    ("chain_head", ("s", 32)),
)
REPORT_REQUEST = (("kind", "B"), ("start", "D"), ("end", "D"))
REPORT_REPLY = (("kind", "B"), ("start", "D"), ("end", "D"), ("totals", ("S", TOTALS)))

# command code -> (request schema, reply schema)   (codes.CMD_*)
COMMANDS = {
    0x01: (EMPTY, INFO_REPLY),
    0x02: (EMPTY, STATUS_REPLY),
    0x03: (SET_TIME_REQUEST, EMPTY),
    0x10: (INITIALIZE_REQUEST, INITIALIZE_REPLY),
    0x11: (FLAGS_REQUEST, LOAD_ROLL_REPLY),
    0x20: (ISSUE_INVOICE_REQUEST, INVOICE_RECORD),
    0x21: (GET_DOCUMENT_REQUEST, INVOICE_RECORD),
    0x30: (EMPTY, DAILY_CLOSE_REPLY),
    0x40: (DECLARE_REQUEST, DECLARATION_RECORD),
    0x41: (FLAGS_REQUEST, CLEAR_UNLOCK_REPLY),
    0x50: (READ_JOURNAL_REQUEST, READ_JOURNAL_REPLY),
    0x51: (EMPTY, INSPECT_REPLY),
    0x60: (REPORT_REQUEST, REPORT_REPLY),
}

# ---- protocol/apdu.py (GB 18240 command data) -------------------------------------------------------
REGISTER_NB = (("random", ("s", 4)), ("card_no", _CARD_NO), ("mac1", ("s", 4)))
REGISTER_SIGN_RESPONSE = (("mac2", ("s", 4)),)
TERMINAL_REGISTER_DATA = (("mac2", ("s", 4)),)
TERMINAL_REGISTER_RESPONSE = (("pin", ("s", 8)),)
ISSUE_INVOICE_DATA = ("X", (
    ("date", "D"), ("kind", "B"), ("number", "I"), ("lines", ("A", 6, ("S", TAX_AMOUNT))), ("total", "I"),
))
ISSUE_INVOICE_RESPONSE = (("fiscal_code", ("s", 8)),)
PERIOD_SUMS = (
    ("normal_count", "I"), ("return_count", "I"), ("void_count", "I"), ("items", ("A", 6, "B")),
    ("normal", ("A", 6, "I")), ("returned", ("A", 6, "I")),
)
_DECLARE_DUTY = (("start", "D"), ("end", "D"), ("sums", ("S", PERIOD_SUMS)))
_DECLARE_DUTY_RESPONSE = (
    ("normal_total", "I"), ("return_total", "I"), ("status", "B"), ("mac1", ("s", 4)),
    ("signature", ("s", 64)),
)
DECLARE_DUTY_DATA = ("X", _DECLARE_DUTY)
DECLARE_DUTY_RESPONSE = ("X", _DECLARE_DUTY_RESPONSE)
DAILY_COLLECT_SIGN_DATA = ("X", (("date", "D"), ("sums", ("S", PERIOD_SUMS))))
DAILY_COLLECT_SIGN_RESPONSE = (("signature", ("s", 64)),)
UPDATE_CONTROLS_DATA = (("key_id", "B"), ("ciphertext", ("s", 24)), ("mac2", ("s", 4)))
ROLL_DATA = (("code", _CODE), ("start", "I"), ("end", "I"), ("mac", ("s", 4)))
VERIFY_PIN_DATA = (("pin", ("s", 8)),)
VERIFY_PIN_RESPONSE = (("new_pin", ("s", 8)),)
DATA_COLLECT_DATA = (
    ("fiscal_card_no", _CARD_NO), ("declaration", ("X", _DECLARE_DUTY)),
    ("response", ("X", _DECLARE_DUTY_RESPONSE)),
)
MANAGEMENT_CERTIFICATE = (
    ("card_no", _CARD_NO), ("inspector_no", ("a", 12)), ("bureau_code", ("a", 12)), ("valid_from", "D"),
    ("valid_to", "D"), ("rights", "B"), ("key_id", "B"), ("public_key", ("s", 32)), ("signature", ("s", 64)),
)
INSPECTOR_PROOF = (("certificate", ("S", MANAGEMENT_CERTIFICATE)), ("signature", ("s", 64)))

# ---- protocol/cardfiles.py --------------------------------------------------------------------------
FISCAL_CONTROLS = (
    ("controls", ("S", CONTROLS)), ("tax_items", ("A", 6, ("S", TAX_ITEM))), ("period_end", "D"),
    ("sequence", "I"),
)
FISCAL_IDENTITY = (
    ("card_no", _CARD_NO), ("machine_no", _DIGITS_MACHINE), ("taxpayer_no", _TAXPAYER_NO),
    ("taxpayer_id", _TAXPAYER_NO), ("taxpayer_name", ("u", 40)), ("bureau_code", ("a", 12)),
    ("filing_mode", "B"), ("valid_from", "D"), ("valid_to", "D"),
)
FISCAL_TODAY = (
    ("date", "D"), ("normal_count", "I"), ("return_count", "I"), ("void_count", "I"),
    ("normal_total", "I"), ("return_total", "I"), ("last_number", "I"), ("last_fiscal_code", ("s", 8)),
    ("closed_date", "D"), ("cumulative_normal", "I"), ("cumulative_return", "I"),
)
FISCAL_DECLARATION = (
    ("status", "B"), ("start", "D"), ("end", "D"), ("totals", ("S", TOTALS)), ("mac", ("s", 4)),
    ("signature", ("s", 64)),
)
FISCAL_ROLL = (("code", _CODE), ("start", "I"), ("end", "I"), ("next", "I"))
USER_CONTROLS = (("machine_no", _DIGITS_MACHINE), ("key_id", "B"), ("ciphertext", ("s", 24)),
                 ("mac2", ("s", 4)))
USER_TAX_ITEMS = (("tax_items", ("A", 6, ("S", TAX_ITEM))),)
USER_DECLARATION = (("status", "B"), ("record", ("S", DATA_COLLECT_DATA)))
USER_ROLL = (("machine_no", _DIGITS_MACHINE), ("roll", ("S", ROLL_DATA)))
USER_TILL = (("machine_no", _DIGITS_MACHINE), ("card_no", _CARD_NO))
