"""ISSUE_INVOICE checks made before anything is written, and the printed invoice."""

import pytest

from fiscal_till import codes
from fiscal_till.invoice import line_amount, split
from fiscal_till.printout import NON_FISCAL, fiscal_code_text, render

AUTH = [1, 2, 3]


def line(item=1, amount=1000, qty=1000, name="x", price=None):
    return dict(tax_item=item, quantity=qty, unit_price=amount if price is None else price, amount=amount,
                name=name)


def req(kind=1, lines=None, total=None, ref=0):
    lines = [line()] if lines is None else lines
    return dict(kind=kind, ref_number=ref, cashier="c", payer="p", lines=lines,
                total=sum(x["amount"] for x in lines) if total is None else total)


def test_normal_invoice_splits_by_tax_item_in_index_order():
    status, slots = split(req(lines=[line(2, 300), line(1, 100), line(2, 50)]), AUTH)
    assert status == codes.E_OK
    assert slots == [dict(item=1, amount=100), dict(item=2, amount=350)] + [dict(item=0, amount=0)] * 4


@pytest.mark.parametrize("request_,error", [
    (req(kind=9), codes.E_INPUT_BAD_KIND),
    (req(lines=[]), codes.E_INPUT_BAD_AMOUNT),
    (req(lines=[line(amount=0)]), codes.E_INPUT_BAD_AMOUNT),
    (req(lines=[line(qty=0)]), codes.E_INPUT_BAD_AMOUNT),
    (req(lines=[line(item=4)]), codes.E_INPUT_UNKNOWN_TAX_ITEM),
    (req(lines=[line(item=0)]), codes.E_INPUT_UNKNOWN_TAX_ITEM),
    (req(total=999), codes.E_INPUT_TOTAL_MISMATCH),
    (req(lines=[line(amount=0xFFFFFFFF), line(amount=1)], total=0), codes.E_INPUT_AMOUNT_OVERFLOW),
    (req(lines=[line()] * (codes.MAX_LINES + 1)), codes.E_INPUT_TOO_MANY_LINES),
    (req(kind=2, ref=0), codes.E_INPUT_BAD_REFERENCE),
    (req(kind=1, ref=5), codes.E_INPUT_BAD_REFERENCE),
    (req(kind=3, lines=[line()]), codes.E_INPUT_BAD_AMOUNT),
])
def test_refused_requests(request_, error):
    assert split(request_, AUTH) == (error, None)


@pytest.mark.parametrize("qty,price,amount", [
    (1000, 1234, 1234),  # one unit at 12.34
    (2500, 399, 998),  # 2.5 x 3.99 = 9.975 -> 9.98: half up
    (1500, 333, 500),  # 1.5 x 3.33 = 4.995 -> 5.00
    (333, 100, 33),  # 0.333 x 1.00 = 0.333 -> 0.33
    (0xFFFFFFFF, 1000, 0xFFFFFFFF),  # the largest quantity at 10.00 still fits 32 bits
])
def test_line_amount_is_quantity_in_thousandths_times_unit_price_rounded_half_up_once(qty, price, amount):
    """R-INVOICE-LINES."""
    assert line_amount(qty, price) == amount
    assert split(req(lines=[line(amount=amount, qty=qty, price=price)]), AUTH)[0] == codes.E_OK


@pytest.mark.parametrize("qty,price,amount", [
    (1000, 1234, 1235),
    (2500, 399, 997),  # truncated instead of rounded
    (2000, 15_800, 15_800),  # the unit price taken for the amount
    (1000, 0, 5),  # nothing costs nothing
])
def test_a_line_amount_other_than_quantity_times_price_is_refused(qty, price, amount):
    assert split(req(lines=[line(amount=amount, qty=qty, price=price)]), AUTH) == (
        codes.E_INPUT_LINE_MISMATCH, None)


def test_a_line_whose_product_passes_32_bits_is_refused_as_overflow():
    huge = line(amount=1, qty=0xFFFFFFFF, price=0xFFFFFFFF)  # the reproduction: amount 1
    assert split(req(lines=[huge]), AUTH) == (codes.E_INPUT_AMOUNT_OVERFLOW, None)
    assert split(req(lines=[line(amount=1, qty=0xFFFFFFFF, price=1001)]), AUTH) == (
        codes.E_INPUT_AMOUNT_OVERFLOW, None)


def test_more_than_six_tax_items_is_refused():
    auth = list(range(1, 9))
    assert split(req(lines=[line(i) for i in range(1, 8)]), auth)[0] == codes.E_INPUT_TOO_MANY_TAX_ITEMS


def test_void_spends_a_number_with_no_amount():
    assert split(req(kind=3, lines=[], total=0), AUTH) == (codes.E_OK, [dict(item=0, amount=0)] * 6)


def test_fiscal_code_prints_as_two_ten_digit_halves():
    """R-PRINTED-INVOICE, R-INVOICE-FISCAL-CODE: 8 bytes print as two 10-digit halves."""
    assert fiscal_code_text(bytes.fromhex("0123456789abcdef")) == "0019088743" "2309737967"
    assert fiscal_code_text(b"\xff" * 8) == "4294967295" "4294967295"


RECORD = dict(kind=1, code="1440012345", number=1001, date=20261127, time=143005, ref_number=0, total=15_800,
              lines=[], fiscal_code=bytes.fromhex("0123456789abcdef"))
IDENT = dict(taxpayer_name="广州市示例餐饮有限公司", taxpayer_no="91440101MA5CXXXX1X", machine_no="4401123400000007")


def test_printed_invoice_carries_every_field():
    """R-PRINTED-INVOICE."""
    text = "\n".join(render(RECORD, req(lines=[line(1, 15_800, 2000, "宫保鸡丁", price=7_900)]), IDENT, False))
    for field in ("广州市示例餐饮有限公司", "发票代码 1440012345", "发票号码 00001001", "机器编号 4401123400000007",
                  "纳税人识别号 91440101MA5CXXXX1X", "开票日期 2026-11-27 14:30:05", "收款员 c", "付款单位 p",
                  "宫保鸡丁", "2.000 x 79.00 = 158.00", "合计(小写) ¥158.00", "合计(大写) 壹佰伍拾捌元整",
                  "税控码 0019088743 2309737967"):
        assert field in text
    assert NON_FISCAL not in text


def test_invoice_printed_with_test_keys_is_stamped_non_fiscal_top_and_bottom():
    """R-NON-FISCAL: on paper too."""
    lines = render(RECORD, req(), IDENT, True)
    assert lines[0] == NON_FISCAL and lines[-1] == NON_FISCAL


def test_return_invoice_prints_negative_amounts_and_the_original():
    """R-PRINTED-INVOICE: a return."""
    rec = dict(RECORD, kind=2, ref_number=1001, number=1002)
    text = "\n".join(render(rec, req(kind=2, ref=1001, lines=[line(1, 15_800)]), IDENT, False))
    assert "红字发票" in text and "原发票号码 00001001" in text and "¥-158.00" in text and "负壹佰伍拾捌元整" in text
