"""Amounts in Chinese capitals (大写金额) as a roll invoice prints them, from integer fen.

Rules (《支付结算办法》 附件一, as banks and invoices apply them):
- digits 零壹贰叁肆伍陆柒捌玖, units 拾佰仟 within a group of four, groups 万 and 亿;
- the highest digit is always written, so 10 元 is 壹拾元 (never 拾元);
- a run of zeros inside the number is one 零; zeros at the end of a group are not written; a group that is
  all zeros writes neither digits nor its group unit (but a lower non-zero group after it gets 零);
- after 元 comes 角 and 分; an amount without 角 and 分 ends 元整; 零 stands between 元 and a 角 or 分 when
  the units digit is 0 or 角 is 0 (壹仟陆佰捌拾元零叁角贰分, 壹佰元零伍分); nothing follows 分; 0 is 零元整.
"""

_DIGITS = "零壹贰叁肆伍陆柒捌玖"
_UNITS = ("", "拾", "佰", "仟")
_GROUPS = ("", "万", "亿", "万亿")


def _group(n):
    """Four digits (1..9999) without leading zeros written, zeros inside as one 零."""
    out = ""
    zero = False
    for pos in range(3, -1, -1):
        d = n // 10 ** pos % 10
        if d == 0:
            if out:
                zero = True
            continue
        if zero:
            out += "零"
            zero = False
        out += _DIGITS[d] + _UNITS[pos]
    return out


def yuan_capitals(yuan):
    if yuan == 0:
        return ""
    groups = []
    while yuan:
        groups.append(yuan % 10000)
        yuan //= 10000
    out = ""
    need_zero = False
    for i in range(len(groups) - 1, -1, -1):
        g = groups[i]
        if g == 0:
            need_zero = bool(out)
            continue
        if out and (need_zero or g < 1000):
            out += "零"
        out += _group(g) + _GROUPS[i]
        need_zero = False
    return out


def capitals(fen):
    """大写 of an amount in fen; ValueError for negative or non-integer amounts."""
    if not isinstance(fen, int) or fen < 0:
        raise ValueError("amount must be a non-negative integer of fen")
    yuan = fen // 100
    jiao = fen // 10 % 10
    cents = fen % 10
    if fen == 0:
        return "零元整"
    out = yuan_capitals(yuan)
    if yuan:
        out += "元"
    if jiao == 0 and cents == 0:
        return out + "整"
    if yuan and (yuan % 10 == 0 or jiao == 0):
        out += "零"
    if jiao:
        out += _DIGITS[jiao] + "角"
    if cents:
        out += _DIGITS[cents] + "分"
    return out
