"""Checking an ISSUE_INVOICE request before anything is written (device.py runs this first).

Rules (docs/FIRMWARE.md, "Issuing"):
- kind is NORMAL, RETURN (红票) or VOID (废票);
- NORMAL and RETURN carry 1..MAX_LINES lines, each with a positive amount and an authorised tax item,
  at most 6 distinct tax items, and `total` equal to the sum of the lines; no sum may pass 32 bits;
- every line's amount is `line_amount(quantity, unit_price)`: quantity in thousandths of a unit, the
  product rounded half up once, computed exactly (INPUT_LINE_MISMATCH otherwise; a product past 32 bits
  is INPUT_AMOUNT_OVERFLOW) - the rule of protocol/commands.py InvoiceLine;
- RETURN names the original (`ref_number`), which the caller checks against the journal;
- VOID spends the next number of the roll on a spoiled form: no lines, total 0, ref_number 0.
The result is the per-tax-item split the fiscal card's ISSUE_INVOICE takes: 6 slots ordered by tax-item
index, unused slots {item 0, amount 0}.
"""

from . import codes

_U32 = 0xFFFFFFFF


def line_amount(quantity, unit_price):  # R-INVOICE-LINES
    """The amount of a line in fen: quantity (thousandths of a unit) x unit price, rounded half up once.
    Exact integer arithmetic (MicroPython's long ints): no float, no intermediate rounding."""
    return (quantity * unit_price + 500) // 1000


def split(req, authorised):  # R-INVOICE-LINES, R-INVOICE-VOID
    """(status, slots) for a decoded request; `authorised` is the list of tax-item indexes (non-zero)."""
    kind = req["kind"]
    lines = req["lines"]
    if kind == codes.INVOICE_VOID:
        if lines or req["total"] != 0 or req["ref_number"] != 0:
            return codes.E_INPUT_BAD_AMOUNT, None
        return codes.E_OK, empty_slots()
    if kind != codes.INVOICE_NORMAL and kind != codes.INVOICE_RETURN:
        return codes.E_INPUT_BAD_KIND, None
    if kind == codes.INVOICE_NORMAL and req["ref_number"] != 0:
        return codes.E_INPUT_BAD_REFERENCE, None
    if kind == codes.INVOICE_RETURN and req["ref_number"] == 0:
        return codes.E_INPUT_BAD_REFERENCE, None
    if not lines:
        return codes.E_INPUT_BAD_AMOUNT, None
    if len(lines) > codes.MAX_LINES:
        return codes.E_INPUT_TOO_MANY_LINES, None
    sums = {}  # type: dict[int, int]
    total = 0
    for line in lines:
        amount = line["amount"]
        if amount <= 0 or line["quantity"] <= 0:
            return codes.E_INPUT_BAD_AMOUNT, None
        item = line["tax_item"]
        if item == 0 or item not in authorised:
            return codes.E_INPUT_UNKNOWN_TAX_ITEM, None
        exact = line_amount(line["quantity"], line["unit_price"])
        if exact > _U32:
            return codes.E_INPUT_AMOUNT_OVERFLOW, None
        if exact != amount:
            return codes.E_INPUT_LINE_MISMATCH, None
        sums[item] = sums.get(item, 0) + amount
        total += amount
        if total > _U32:
            return codes.E_INPUT_AMOUNT_OVERFLOW, None
    if len(sums) > 6:
        return codes.E_INPUT_TOO_MANY_TAX_ITEMS, None
    if total != req["total"]:
        return codes.E_INPUT_TOTAL_MISMATCH, None
    items = sorted(sums)
    slots = [{"item": i, "amount": sums[i]} for i in items]
    while len(slots) < 6:
        slots.append({"item": 0, "amount": 0})
    return codes.E_OK, slots


def empty_slots():
    return [{"item": 0, "amount": 0} for _ in range(6)]
