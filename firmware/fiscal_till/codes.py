"""Numbers of the protocol, generated from protocol/ by `python -m protocol.codegen`: do not edit."""

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[misc]
        return x

PROTOCOL_VERSION = const(0x0101)
MAX_PAYLOAD = const(4096)
MAX_LINES = const(32)
READ_JOURNAL_MAX = const(4088)
NO_DEADLINE_DAYS = const(0x7FFF)
KEEPALIVE_INTERVAL_MS = const(250)
CARD_MAC_TRIES = const(3)

# rule thresholds (protocol/rules.py: each belongs to one rule, named in docs/RULES.md)
RULE_CARD_MAC_TRIES = const(3)
RULE_CARD_PIN_TRIES = const(3)
RULE_FILING_DAY_OF_MONTH = const(15)
RULE_FM_FULL_PERMILLE = const(1000)
RULE_SERVICE_LIFE_YEARS = const(5)
RULE_SURCHARGE_PER_10K_PER_DAY = const(5)
RULE_WARN_DEADLINE_DAYS = const(7)
RULE_WARN_FM_PERMILLE = const(900)
RULE_WARN_LIMIT_PERCENT = const(75)
RULE_WARN_ROLL_INVOICES = const(20)

# commands
CMD_GET_INFO = const(0x01)
CMD_GET_STATUS = const(0x02)
CMD_SET_TIME = const(0x03)
CMD_INITIALIZE = const(0x10)
CMD_LOAD_ROLL = const(0x11)
CMD_ISSUE_INVOICE = const(0x20)
CMD_GET_DOCUMENT = const(0x21)
CMD_DAILY_CLOSE = const(0x30)
CMD_DECLARE = const(0x40)
CMD_CLEAR_UNLOCK = const(0x41)
CMD_READ_JOURNAL = const(0x50)
CMD_INSPECT = const(0x51)
CMD_REPORT = const(0x60)
MUTATING = (CMD_SET_TIME, CMD_INITIALIZE, CMD_LOAD_ROLL, CMD_ISSUE_INVOICE, CMD_DAILY_CLOSE, CMD_DECLARE, CMD_CLEAR_UNLOCK)

# status words / error codes (protocol/errors.py)
E_OK = const(0x0000)
E_LINK_UNKNOWN_COMMAND = const(0x0101)
E_LINK_NOT_SUPPORTED = const(0x0102)
E_LINK_BAD_PAYLOAD = const(0x0103)
E_LINK_RID_REUSED = const(0x0104)
E_LINK_RID_MISSING = const(0x0105)
E_LINK_REPLY_TOO_LONG = const(0x0106)
E_LINK_DEVICE_FAULT = const(0x0107)
E_LINK_RID_STALE = const(0x0108)
E_INPUT_BAD_DATE = const(0x0201)
E_INPUT_BAD_AMOUNT = const(0x0202)
E_INPUT_AMOUNT_OVERFLOW = const(0x0203)
E_INPUT_TOO_MANY_LINES = const(0x0204)
E_INPUT_TOO_MANY_TAX_ITEMS = const(0x0205)
E_INPUT_UNKNOWN_TAX_ITEM = const(0x0206)
E_INPUT_TOTAL_MISMATCH = const(0x0207)
E_INPUT_BAD_KIND = const(0x0208)
E_INPUT_BAD_REFERENCE = const(0x0209)
E_INPUT_BAD_TEXT = const(0x020A)
E_INPUT_NOT_FOUND = const(0x020B)
E_INPUT_BAD_RANGE = const(0x020C)
E_INPUT_LINE_MISMATCH = const(0x020D)
E_CARD_FISCAL_MISSING = const(0x0301)
E_CARD_USER_MISSING = const(0x0302)
E_CARD_MGMT_MISSING = const(0x0303)
E_CARD_WRONG_TYPE = const(0x0304)
E_CARD_NO_RESPONSE = const(0x0305)
E_CARD_WRONG_LENGTH = const(0x0306)
E_CARD_REGISTRATION = const(0x0307)
E_CARD_CONDITIONS = const(0x0308)
E_CARD_BAD_DATA = const(0x0309)
E_CARD_FILE_NOT_FOUND = const(0x030A)
E_CARD_SECURITY = const(0x030B)
E_CARD_PIN_WRONG = const(0x030C)
E_CARD_PIN_BLOCKED = const(0x030D)
E_CARD_MAC = const(0x030E)
E_CARD_LOCKED = const(0x030F)
E_CARD_OVER_LIMIT = const(0x0310)
E_CARD_NO_ROLL = const(0x0311)
E_CARD_INS_NOT_SUPPORTED = const(0x0312)
E_CARD_CLA_NOT_SUPPORTED = const(0x0313)
E_CARD_UNEXPECTED_SW = const(0x0314)
E_CARD_FOREIGN_MACHINE = const(0x0315)
E_CARD_FOREIGN_TAXPAYER = const(0x0316)
E_CARD_EXPIRED = const(0x0317)
E_CARD_MAC_LAST_TRY = const(0x0318)
E_CARD_ROLL_REFUSED = const(0x0319)
E_FM_FULL = const(0x0401)
E_FM_DAMAGED = const(0x0402)
E_FM_WRITE_FAILED = const(0x0403)
E_FM_FOREIGN = const(0x0404)
E_LOCK_NOT_INITIALIZED = const(0x0501)
E_LOCK_DEADLINE = const(0x0502)
E_LOCK_SINGLE_LIMIT = const(0x0503)
E_LOCK_CUMULATIVE_LIMIT = const(0x0504)
E_LOCK_RETURN_LIMIT = const(0x0505)
E_LOCK_NO_ROLL = const(0x0506)
E_LOCK_FM_FULL = const(0x0507)
E_LOCK_FISCAL_CARD_MISSING = const(0x0508)
E_LOCK_FISCAL_CARD_UNREGISTERED = const(0x0509)
E_LOCK_FISCAL_CARD_FOREIGN = const(0x050A)
E_LOCK_PIN_BLOCKED = const(0x050B)
E_LOCK_MAC = const(0x050C)
E_LOCK_SERVICE_LIFE = const(0x050D)
E_LOCK_FM_DAMAGED = const(0x050E)
E_LOCK_CLOCK_FAULT = const(0x050F)
E_CLOCK_BACKWARDS = const(0x0601)
E_CLOCK_UNAUTHORIZED = const(0x0602)
E_CLOCK_INVALID = const(0x0603)
E_STATE_ALREADY_INITIALIZED = const(0x0701)
E_STATE_ROLL_LOADED = const(0x0702)
E_STATE_DECLARATION_PENDING = const(0x0703)
E_STATE_NOTHING_TO_DECLARE = const(0x0704)
E_STATE_NOT_DECLARED = const(0x0705)
E_STATE_RECOVERING = const(0x0706)
E_STATE_DAY_CLOSED = const(0x0707)

# card status word -> error: (sw, mask, ins or -1, error); command-specific rows first
CARD_SW = (
    (0x9401, 0xFFFF, 233, 0x0311),
    (0x9302, 0xFFFF, 247, 0x0319),
    (0x9000, 0xFFFF, -1, 0x0000),
    (0x6700, 0xFFFF, -1, 0x0306),
    (0x6901, 0xFFFF, -1, 0x0307),
    (0x6985, 0xFFFF, -1, 0x0308),
    (0x6A80, 0xFFFF, -1, 0x0309),
    (0x6A82, 0xFFFF, -1, 0x030A),
    (0x6982, 0xFFFF, -1, 0x030B),
    (0x63C0, 0xFFF0, -1, 0x030C),
    (0x6983, 0xFFFF, -1, 0x030D),
    (0x9302, 0xFFFF, -1, 0x030E),
    (0x9303, 0xFFFF, -1, 0x030F),
    (0x9401, 0xFFFF, -1, 0x0310),
    (0x6D00, 0xFFFF, -1, 0x0312),
    (0x6E00, 0xFFFF, -1, 0x0313),
)

# till states
STATE_NEW = const(0)
STATE_IN_SERVICE = const(1)

# lock reasons: bit numbers, and the error each one gives a refused invoice
LOCK_NOT_INITIALIZED = const(0)
LOCK_DEADLINE = const(1)
LOCK_CUMULATIVE_LIMIT = const(2)
LOCK_RETURN_LIMIT = const(3)
LOCK_NO_ROLL = const(4)
LOCK_FM_FULL = const(5)
LOCK_FISCAL_CARD_MISSING = const(6)
LOCK_FISCAL_CARD_UNREGISTERED = const(7)
LOCK_FISCAL_CARD_FOREIGN = const(8)
LOCK_PIN_BLOCKED = const(9)
LOCK_MAC = const(10)
LOCK_SERVICE_LIFE = const(11)
LOCK_FM_DAMAGED = const(12)
LOCK_CLOCK_FAULT = const(13)
LOCK_ERRORS = (
    (LOCK_NOT_INITIALIZED, E_LOCK_NOT_INITIALIZED),
    (LOCK_DEADLINE, E_LOCK_DEADLINE),
    (LOCK_CUMULATIVE_LIMIT, E_LOCK_CUMULATIVE_LIMIT),
    (LOCK_RETURN_LIMIT, E_LOCK_RETURN_LIMIT),
    (LOCK_NO_ROLL, E_LOCK_NO_ROLL),
    (LOCK_FM_FULL, E_LOCK_FM_FULL),
    (LOCK_FISCAL_CARD_MISSING, E_LOCK_FISCAL_CARD_MISSING),
    (LOCK_FISCAL_CARD_UNREGISTERED, E_LOCK_FISCAL_CARD_UNREGISTERED),
    (LOCK_FISCAL_CARD_FOREIGN, E_LOCK_FISCAL_CARD_FOREIGN),
    (LOCK_PIN_BLOCKED, E_LOCK_PIN_BLOCKED),
    (LOCK_MAC, E_LOCK_MAC),
    (LOCK_SERVICE_LIFE, E_LOCK_SERVICE_LIFE),
    (LOCK_FM_DAMAGED, E_LOCK_FM_DAMAGED),
    (LOCK_CLOCK_FAULT, E_LOCK_CLOCK_FAULT),
)

# warnings: bit numbers
WARN_DEADLINE_NEAR = const(0)
WARN_AMOUNT_75 = const(1)
WARN_RETURN_75 = const(2)
WARN_FM_90 = const(3)
WARN_ROLL_LOW = const(4)
WARN_DECLARATION_PENDING = const(5)
WARN_NON_FISCAL = const(6)
WARN_MAC_LAST_TRY = const(7)

# request flags (LOAD_ROLL, CLEAR_UNLOCK): bit numbers
FLAG_CONFIRM_MAC = const(0)

# fiscal-memory damage kinds (GET_STATUS.damage_kind)
DAMAGE_NONE = const(0)
DAMAGE_RECORD_CRC = const(1)
DAMAGE_SECTOR_HEADER = const(2)
DAMAGE_SEQUENCE = const(3)
DAMAGE_LOST_RECORDS = const(4)
DAMAGE_CHAIN = const(5)
DAMAGE_GARBAGE = const(6)
DAMAGE_TORN_OPEN = const(7)
DAMAGE_FOREIGN_DEVICE = const(8)
DAMAGE_FOREIGN_SECTOR = const(9)
DAMAGE_AREA = const(10)
DAMAGE_LAYOUT = const(11)
DAMAGE_TRUNCATED = const(12)
DAMAGE_ROLLBACK = const(13)
DAMAGE_MEDIA = const(14)
DAMAGE_NVRAM = const(15)
DAMAGE_OTHER = const(16)

# capabilities: bit numbers
CAP_RETURN_INVOICE = const(0)
CAP_VOID_INVOICE = const(1)
CAP_MANAGEMENT_CARD = const(2)
CAP_PRINTER = const(3)
CAP_JOURNAL_READOUT = const(4)
CAP_SIMULATOR = const(5)

# invoice kinds
INVOICE_NORMAL = const(1)
INVOICE_RETURN = const(2)
INVOICE_VOID = const(3)

# report kinds
REPORT_X = const(1)
REPORT_Z = const(2)
REPORT_PERIOD = const(3)

# fiscal-memory record types
REC_INIT = const(0x01)
REC_DAILY = const(0x02)
REC_DECLARATION = const(0x03)
REC_CLEAR_UNLOCK = const(0x04)
REC_ROLL_LOAD = const(0x05)
REC_ROLL_USAGE = const(0x06)
REC_INVOICE = const(0x07)
REC_EVENT = const(0x08)

# event codes
EV_POWER_ON = const(1)
EV_POWER_FAIL_RECOVERED = const(2)
EV_LOCKED = const(3)
EV_UNLOCKED = const(4)
EV_CLOCK_SET = const(5)
EV_INSPECTION = const(6)
EV_CARD_FAULT = const(7)
EV_FM_DAMAGE_FOUND = const(8)
EV_ROLL_REFUSED = const(9)
EV_CONTROLS_REFUSED = const(10)


def error_for_sw(sw, ins=-1):
    """Map a card status word to our error code (protocol.errors.from_card_sw)."""
    for value, mask, only, code in CARD_SW:
        if sw & mask == value and (only == -1 or only == ins):
            return code
    return E_CARD_UNEXPECTED_SW
