"""The printed roll invoice: every field a roll invoice carries, as lines of text for the printer.

Fields: invoice code and number, machine number, taxpayer name and number, date and time, cashier,
payer, the lines (name, quantity, unit price, amount), totals in figures and in Chinese capitals (大写),
and the 20-digit 税控码 printed as two 10-digit halves.  Returns (红字) print their amounts negative and
name the original; voids print 作废.  With test keys every invoice is stamped NON-FISCAL at top and
bottom so a simulator's paper can never pass for a real one.
"""

from .capitals import capitals

# R-NON-FISCAL: every document printed with test keys says so
NON_FISCAL = "*** NON-FISCAL 非税控 测试 ***"
WIDTH = 32


def fiscal_code_text(code8):
    """8 bytes -> 20 digits: two big-endian 4-byte halves, each zero-padded to 10 digits."""
    hi = code8[0] << 24 | code8[1] << 16 | code8[2] << 8 | code8[3]
    lo = code8[4] << 24 | code8[5] << 16 | code8[6] << 8 | code8[7]
    return "%010d%010d" % (hi, lo)


def money(fen):
    sign = "-" if fen < 0 else ""
    fen = -fen if fen < 0 else fen
    return "%s%d.%02d" % (sign, fen // 100, fen % 100)


def _date(d, t):
    return "%04d-%02d-%02d %02d:%02d:%02d" % (d // 10000, d // 100 % 100, d % 100, t // 10000, t // 100 % 100,
                                             t % 100)


def render(record, request, identity, non_fiscal):
    """Lines of one invoice.  `record` is the InvoiceRecord, `request` the ISSUE_INVOICE request,
    `identity` a dict with taxpayer_name, taxpayer_no, machine_no."""
    out = []
    if non_fiscal:
        out.append(NON_FISCAL)
    out.append(identity["taxpayer_name"])
    kind = record["kind"]
    title = {1: "发票 INVOICE", 2: "红字发票 RETURN", 3: "作废 VOID"}.get(kind, "?")
    out.append(title)
    out.append("发票代码 %s" % record["code"])
    out.append("发票号码 %08d" % record["number"])
    out.append("机器编号 %s" % identity["machine_no"])
    out.append("纳税人识别号 %s" % identity["taxpayer_no"])
    out.append("开票日期 %s" % _date(record["date"], record["time"]))
    out.append("收款员 %s" % request.get("cashier", ""))
    out.append("付款单位 %s" % request.get("payer", ""))
    if kind == 2:
        out.append("原发票号码 %08d" % record["ref_number"])
    sign = -1 if kind == 2 else 1
    out.append("-" * WIDTH)
    for line in request.get("lines", ()):
        q = line["quantity"]
        out.append(line["name"])
        out.append("  %d.%03d x %s = %s" % (q // 1000, q % 1000, money(line["unit_price"]),
                                           money(sign * line["amount"])))
    out.append("-" * WIDTH)
    total = record["total"]
    out.append("合计(小写) ¥%s" % money(sign * total))
    out.append("合计(大写) %s%s" % ("负" if sign < 0 and total else "", capitals(total)))
    code = fiscal_code_text(record["fiscal_code"])
    out.append("税控码 %s %s" % (code[:10], code[10:]))
    if non_fiscal:
        out.append(NON_FISCAL)
    return out
