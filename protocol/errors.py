"""The one error-code table of the toolkit.

Every status a till can put in a reply, every error the gateway reports and every card status word
(SW1 SW2) the till can receive maps to exactly one row here.  The firmware's `fiscal_till/codes.py` is
generated from this table (`python -m protocol.codegen`), `docs/PROTOCOL.md` is generated from it, and
tests fail when either drifts.

Codes are 16-bit, grouped by category in the high byte so a log reader can tell the area at a glance:

    0x00xx ok       0x01xx link      0x02xx input     0x03xx card
    0x04xx fiscal memory             0x05xx lock      0x06xx clock     0x07xx state

`state` is ours: lifecycle-order errors (already initialized, declaration pending...) that are neither a
standing lock nor malformed input.  A card status word is mapped with `from_card_sw()`: an entry may claim
a whole SW family with a mask (63Cx: wrong PIN, x tries left), and one command may give a status word its
own meaning (9401 from DISTRIBUTE_INVOICE_NB is "no roll left", not "amount over limit").
"""

from __future__ import annotations

from dataclasses import dataclass, field

CATEGORIES = ("ok", "link", "input", "card", "fiscal_memory", "lock", "clock", "state")


@dataclass(frozen=True)
class Error:
    code: int
    name: str
    zh: str
    en: str
    category: str
    #: card status words this error is mapped from: (sw, mask) pairs; mask 0xFFFF is an exact match.
    card_sw: tuple[tuple[int, int], ...] = field(default=())
    #: only for this card INS (None: any command).
    card_ins: int | None = None


def _e(code: int, name: str, zh: str, en: str, category: str, sw: tuple[tuple[int, int], ...] = (),
       ins: int | None = None) -> Error:
    return Error(code, name, zh, en, category, sw, ins)


_EXACT = 0xFFFF

TABLE: tuple[Error, ...] = (
    _e(0x0000, "OK", "成功", "success", "ok", ((0x9000, _EXACT),)),
    # link: the frame arrived intact but the request cannot be executed as sent
    _e(0x0101, "LINK_UNKNOWN_COMMAND", "未知命令", "unknown command code", "link"),
    _e(0x0102, "LINK_NOT_SUPPORTED", "本设备不支持该命令", "command not supported by this device", "link"),
    _e(0x0103, "LINK_BAD_PAYLOAD", "数据格式错误", "payload does not match the command's layout", "link"),
    _e(0x0104, "LINK_RID_REUSED", "请求号已用于另一请求",
       "request id already used for a different request", "link"),
    _e(0x0105, "LINK_RID_MISSING", "修改类请求缺少请求号", "mutating request needs a non-zero request id", "link"),
    _e(0x0106, "LINK_REPLY_TOO_LONG", "应答超出最大长度", "reply would exceed the maximum payload", "link"),
    _e(0x0107, "LINK_DEVICE_FAULT", "设备内部故障，请求未完成", "device fault: the request did not complete", "link"),
    _e(0x0108, "LINK_RID_STALE", "请求号不大于上次执行的请求号（旧帧）",
       "request id not above the last executed one: an old frame, never run twice", "link"),
    # input: the request is well-formed but its values are refused
    _e(0x0201, "INPUT_BAD_DATE", "日期或时间无效", "invalid date or time", "input"),
    _e(0x0202, "INPUT_BAD_AMOUNT", "金额无效（为零或为负）", "amount is zero or negative", "input"),
    _e(0x0203, "INPUT_AMOUNT_OVERFLOW", "金额超出32位范围", "amount overflows 32 bits", "input"),
    _e(0x0204, "INPUT_TOO_MANY_LINES", "商品行过多", "too many invoice lines", "input"),
    _e(0x0205, "INPUT_TOO_MANY_TAX_ITEMS", "税种税目超过6个", "more than 6 tax items on one invoice", "input"),
    _e(0x0206, "INPUT_UNKNOWN_TAX_ITEM", "未授权的税种税目", "tax item not authorised for this till", "input"),
    _e(0x0207, "INPUT_TOTAL_MISMATCH", "合计金额与明细不符", "total does not equal the sum of the lines", "input"),
    _e(0x0208, "INPUT_BAD_KIND", "发票类型无效", "invalid invoice or report kind", "input"),
    _e(0x0209, "INPUT_BAD_REFERENCE", "原发票不存在或不可退", "referenced invoice unknown or not eligible for return",
       "input"),
    _e(0x020A, "INPUT_BAD_TEXT", "文本过长或编码错误", "text too long or not UTF-8", "input"),
    _e(0x020B, "INPUT_NOT_FOUND", "记录不存在", "no such document or record", "input"),
    _e(0x020C, "INPUT_BAD_RANGE", "范围无效", "offset or period out of range", "input"),
    _e(0x020D, "INPUT_LINE_MISMATCH", "商品行金额不等于数量乘单价", "line amount does not equal quantity x unit price",
       "input"),
    # card: from the card slots and the card status words
    _e(0x0301, "CARD_FISCAL_MISSING", "未插入税控卡", "fiscal card missing", "card"),
    _e(0x0302, "CARD_USER_MISSING", "未插入用户卡", "user card missing", "card"),
    _e(0x0303, "CARD_MGMT_MISSING", "需要税务管理卡", "management card required", "card"),
    _e(0x0304, "CARD_WRONG_TYPE", "插入的卡类型错误", "wrong kind of card inserted", "card"),
    _e(0x0305, "CARD_NO_RESPONSE", "卡无响应或已拔出", "card mute or pulled out", "card"),
    _e(0x0306, "CARD_WRONG_LENGTH", "卡命令长度错误", "card: wrong length", "card", ((0x6700, _EXACT),)),
    _e(0x0307, "CARD_REGISTRATION", "卡已注册或未注册", "card: already registered or not registered",
       "card", ((0x6901, _EXACT),)),
    _e(0x0308, "CARD_CONDITIONS", "卡使用条件不满足或存储已满",
       "card: conditions of use not satisfied or storage full", "card", ((0x6985, _EXACT),)),
    _e(0x0309, "CARD_BAD_DATA", "卡数据错误（日期、税目、发票号或校验）",
       "card: bad data (date, tax item, invoice number or check byte)", "card", ((0x6A80, _EXACT),)),
    _e(0x030A, "CARD_FILE_NOT_FOUND", "卡文件不存在", "card: file not found", "card", ((0x6A82, _EXACT),)),
    _e(0x030B, "CARD_SECURITY", "卡安全状态不满足", "card: security status not satisfied", "card",
       ((0x6982, _EXACT),)),
    _e(0x030C, "CARD_PIN_WRONG", "税控卡口令错误", "card: wrong PIN (tries left in SW2 low nibble)", "card",
       ((0x63C0, 0xFFF0),)),
    _e(0x030D, "CARD_PIN_BLOCKED", "税控卡口令已锁", "card: PIN blocked", "card", ((0x6983, _EXACT),)),
    _e(0x030E, "CARD_MAC", "MAC校验错误", "card: MAC wrong", "card", ((0x9302, _EXACT),)),
    _e(0x030F, "CARD_LOCKED", "卡已永久锁定", "card: permanently locked", "card", ((0x9303, _EXACT),)),
    _e(0x0310, "CARD_OVER_LIMIT", "金额超出卡内限额", "card: amount over limit", "card", ((0x9401, _EXACT),)),
    _e(0x0311, "CARD_NO_ROLL", "用户卡上没有可分发的发票卷", "user card holds no roll to distribute", "card",
       ((0x9401, _EXACT),), ins=0xE9),
    _e(0x0312, "CARD_INS_NOT_SUPPORTED", "卡不支持该指令", "card: instruction not supported", "card",
       ((0x6D00, _EXACT),)),
    _e(0x0313, "CARD_CLA_NOT_SUPPORTED", "卡不支持该类别", "card: class not supported", "card",
       ((0x6E00, _EXACT),)),
    _e(0x0314, "CARD_UNEXPECTED_SW", "卡返回未知状态字", "card: unexpected status word", "card"),
    _e(0x0315, "CARD_FOREIGN_MACHINE", "税控卡不属于本机", "fiscal card belongs to another machine", "card"),
    _e(0x0316, "CARD_FOREIGN_TAXPAYER", "用户卡不属于本纳税人", "user card belongs to another taxpayer", "card"),
    _e(0x0317, "CARD_EXPIRED", "卡不在有效期内", "card outside its validity dates", "card"),
    _e(0x0318, "CARD_MAC_LAST_TRY", "税控卡仅剩最后一次MAC校验机会，请确认后重试",
       "the fiscal card is one MAC refusal from its permanent lock: resend with the confirm flag", "card"),
    _e(0x0319, "CARD_ROLL_REFUSED", "税控卡拒绝该发票卷（MAC错误，或为其他税控卡制作），已从用户卡移除",
       "the fiscal card refused the roll's MAC (damaged, or made for another fiscal card); it was taken off the "
       "user card", "card", ((0x9302, _EXACT),), ins=0xF7),
    # fiscal memory
    _e(0x0401, "FM_FULL", "税控存储器已满", "fiscal memory full", "fiscal_memory"),
    _e(0x0402, "FM_DAMAGED", "税控存储器数据损坏", "fiscal memory damaged", "fiscal_memory"),
    _e(0x0403, "FM_WRITE_FAILED", "税控存储器写入失败", "fiscal memory write failed", "fiscal_memory"),
    _e(0x0404, "FM_FOREIGN", "税控存储器属于另一台设备", "fiscal memory belongs to another device",
       "fiscal_memory"),
    # lock: issuing refused; each standing lock reason has its own code (see protocol.status.LOCK_REASONS)
    _e(0x0501, "LOCK_NOT_INITIALIZED", "未进行税控初始化", "not initialized", "lock"),
    _e(0x0502, "LOCK_DEADLINE", "已过开票截止日期，请申报并清零解锁",
       "invoice deadline passed: declare and clear-unlock", "lock"),
    _e(0x0503, "LOCK_SINGLE_LIMIT", "超过单张发票开票金额限额", "amount over the single-invoice limit", "lock"),
    _e(0x0504, "LOCK_CUMULATIVE_LIMIT", "已达发票累计金额限额", "cumulative invoice limit reached", "lock"),
    _e(0x0505, "LOCK_RETURN_LIMIT", "已达退票累计金额限额", "cumulative return limit reached", "lock"),
    _e(0x0506, "LOCK_NO_ROLL", "发票已用完，请装入新发票卷", "no invoice left: load a new roll", "lock"),
    _e(0x0507, "LOCK_FM_FULL", "税控存储器已满", "fiscal memory full", "lock"),
    _e(0x0508, "LOCK_FISCAL_CARD_MISSING", "税控卡缺失", "fiscal card missing", "lock"),
    _e(0x0509, "LOCK_FISCAL_CARD_UNREGISTERED", "税控卡未注册", "fiscal card not registered", "lock"),
    _e(0x050A, "LOCK_FISCAL_CARD_FOREIGN", "税控卡不属于本机", "fiscal card of another machine", "lock"),
    _e(0x050B, "LOCK_PIN_BLOCKED", "税控卡口令已锁", "fiscal card PIN blocked", "lock"),
    _e(0x050C, "LOCK_MAC", "MAC校验错误次数过多", "MAC errors", "lock"),
    _e(0x050D, "LOCK_SERVICE_LIFE", "税控收款机已过使用年限", "service life over", "lock"),
    _e(0x050E, "LOCK_FM_DAMAGED", "税控存储器损坏", "fiscal memory damaged", "lock"),
    _e(0x050F, "LOCK_CLOCK_FAULT", "时钟故障（早于最后记录）", "clock fault: earlier than the last record",
       "lock"),
    # clock
    _e(0x0601, "CLOCK_BACKWARDS", "时钟不能回调", "the clock must never go back", "clock"),
    _e(0x0602, "CLOCK_UNAUTHORIZED", "修改时钟需要税务管理卡", "changing the clock needs the management card",
       "clock"),
    _e(0x0603, "CLOCK_INVALID", "时钟无效", "clock not set or invalid", "clock"),
    # state: lifecycle order
    _e(0x0701, "STATE_ALREADY_INITIALIZED", "已进行过税控初始化", "already initialized", "state"),
    _e(0x0702, "STATE_ROLL_LOADED", "已有发票卷未用完", "a roll is still loaded", "state"),
    _e(0x0703, "STATE_DECLARATION_PENDING", "申报数据尚未处理，请到税务机关完成申报",
       "declaration pending: complete it at the tax bureau", "state"),
    _e(0x0704, "STATE_NOTHING_TO_DECLARE", "没有可申报的数据", "nothing to declare", "state"),
    _e(0x0705, "STATE_NOT_DECLARED", "尚未申报", "no declaration to clear", "state"),
    _e(0x0706, "STATE_RECOVERING", "正在恢复中断的操作", "recovering an interrupted operation", "state"),
    _e(0x0707, "STATE_DAY_CLOSED", "今日已日结，明日方可开票", "today is closed: issuing resumes tomorrow", "state"),
)

BY_CODE: dict[int, Error] = {e.code: e for e in TABLE}
BY_NAME: dict[str, Error] = {e.name: e for e in TABLE}
assert len(BY_CODE) == len(TABLE) and len(BY_NAME) == len(TABLE), "duplicate error code or name"
assert all(e.category in CATEGORIES for e in TABLE)


def lookup(code: int) -> Error:
    """The row for a status code; unknown codes raise KeyError (a device must use only these)."""
    return BY_CODE[code]


def from_card_sw(sw: int, ins: int | None = None) -> Error:
    """Map a card status word to our error; a command-specific row wins over a generic one."""
    generic = None
    for e in TABLE:
        for value, mask in e.card_sw:
            if sw & mask == value:
                if e.card_ins is not None and e.card_ins == ins:
                    return e
                if e.card_ins is None and generic is None:
                    generic = e
    return generic if generic is not None else BY_NAME["CARD_UNEXPECTED_SW"]


def describe(code: int) -> str:
    """`0x0502 LOCK_DEADLINE: invoice deadline passed ... / 已过开票截止日期...` for messages and logs."""
    e = BY_CODE.get(code)
    if e is None:
        return "0x%04X (unknown status)" % code
    return "0x%04X %s: %s / %s" % (e.code, e.name, e.en, e.zh)
