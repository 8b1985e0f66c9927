"""Write tests/vectors/golden.json: one hand-chosen example of every layout, frame and APDU.

    python tests/vectors/make_golden.py

Run it only when a layout changes on purpose; tests/test_golden.py then shows the diff as failures of
the old vectors, and review of the new file is the review of the byte change.  The values are chosen to
read well (a real-looking invoice, a deadline, a roll), not to be random.
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from layout_pairs import PAIRS  # noqa: E402
from strategies import to_json  # noqa: E402

from protocol import apdu, frame  # noqa: E402

CONTROLS = dict(deadline=20261231, single_limit=1_000_000, cumulative_limit=50_000_000, return_limit=5_000_000)
ITEM1 = dict(index=1, rate=300, code="10101", name="餐饮服务")
ITEM0 = dict(index=0, rate=0, code="", name="")
TAX_ITEMS = [ITEM1, dict(index=2, rate=500, code="10201", name="住宿服务")] + [ITEM0] * 4
LINES_T = [dict(item=1, normal=1_234_500, returned=10_000), dict(item=2, normal=800_000, returned=0)] + \
          [dict(item=0, normal=0, returned=0)] * 4
TOTALS = dict(normal_count=120, return_count=1, void_count=2, normal_total=2_034_500, return_total=10_000,
              lines=LINES_T)
TAX_AMOUNTS = [dict(item=1, amount=12_800), dict(item=2, amount=3_000)] + [dict(item=0, amount=0)] * 4
SIG = bytes(range(64))
CARD = bytes.fromhex("4401000000000042")
MACHINE = "4401123400000007"
REQ = dict(rid=0x00010203, digest=0xCAFEF00D)
INVOICE = dict(request=REQ, kind=1, code="1440012345", number=1001, date=20261127, time=143005, ref_number=0,
               total=15_800, lines=TAX_AMOUNTS, fiscal_code=bytes.fromhex("0123456789abcdef"))
SUMS = dict(normal_count=120, return_count=1, void_count=2, items=[1, 2, 0, 0, 0, 0],
            normal=[1_234_500, 800_000, 0, 0, 0, 0], returned=[10_000, 0, 0, 0, 0, 0])
DECL_IN = dict(start=20261101, end=20261130, sums=SUMS)
MGMT_CERT = dict(card_no=bytes.fromhex("4401900000000001"), inspector_no="440100000123", bureau_code="144010000000",
                 valid_from=20260101, valid_to=20281231, rights=3, key_id=1, public_key=bytes(range(100, 132)),
                 signature=SIG)
DECL_OUT = dict(normal_total=2_034_500, return_total=10_000, status=0, mac1=b"\x11\x22\x33\x44", signature=SIG)

VALUES = {
    "Controls": CONTROLS,
    "TaxItem": ITEM1,
    "Totals": TOTALS,
    "TaxAmount": TAX_AMOUNTS[0],
    "TaxLineTotals": LINES_T[0],
    "RequestTag": REQ,
    "InitRecord": dict(request=REQ, date=20260105, time=93000, machine_no=MACHINE, fiscal_card_no=CARD,
                       user_card_no=bytes.fromhex("4401000000000043"), taxpayer_no="91440101MA5CXXXX1X",
                       taxpayer_name="广州市示例餐饮有限公司", bureau_code="144010000000", valid_from=20260101,
                       valid_to=20301231, controls=CONTROLS, tax_items=TAX_ITEMS),
    "DailyRecord": dict(request=dict(rid=0, digest=0), date=20261127, totals=TOTALS, signature=SIG),
    "DeclarationRecord": dict(request=REQ, date=20261201, time=100000, start=20261101, end=20261130, totals=TOTALS,
                              mac=b"\x11\x22\x33\x44", signature=SIG),
    "ClearUnlockRecord": dict(request=REQ, date=20261201, time=103000, period_end=20261130, sequence=12, controls=CONTROLS),
    "RollLoadRecord": dict(request=REQ, date=20261127, time=80000, code="1440012345", start=1001, end=1500),
    "RollUsageRecord": dict(date=20261128, code="1440012345", start=1001, end=1500, normal=480, returned=3,
                            voided=17, last_number=1500),
    "InvoiceRecord": INVOICE,
    "EventRecord": dict(request=dict(rid=0, digest=0), date=20261127, time=75959, event=1, arg=0),
    "InfoReply": dict(model="FTK-1", machine_no=MACHINE, fw_version="0.1.0", fw_hash=bytes(range(32)),
                      protocol_version=0x0101, capabilities=0x1F, max_payload=4096),
    "StatusReply": dict(state=1, date=20261127, time=143005, lock_reasons=0, warnings=0b10001, deadline=20261231,
                        days_to_deadline=34, single_limit=1_000_000, amount_left=47_965_500, return_left=4_990_000,
                        roll_code="1440012345", roll_next=1002, roll_end=1500, invoices_left=499,
                        journal_permille=12, last_number=1001, last_declared_end=20261031,
                        last_rid=41, damage_kind=1, damage_sector=17, damage_offset=0x1F0, damage_index=1234),
    "SetTimeRequest": dict(date=20261127, time=143005),
    "InitializeRequest": dict(date=20260105, time=93000),
    "InitializeReply": dict(machine_no=MACHINE, fiscal_card_no=CARD, taxpayer_no="91440101MA5CXXXX1X", record=0),
    "FlagsRequest": dict(flags=1),
    "LoadRollReply": dict(code="1440012345", start=1001, end=1500),
    "InvoiceLine": dict(tax_item=1, quantity=2000, unit_price=6_400, amount=12_800, name="宫保鸡丁"),
    "IssueInvoiceRequest": dict(kind=1, ref_number=0, cashier="李娜", payer="个人", total=15_800, lines=[
        dict(tax_item=1, quantity=2000, unit_price=6_400, amount=12_800, name="宫保鸡丁"),
        dict(tax_item=2, quantity=1000, unit_price=3_000, amount=3_000, name="Room service")]),
    "GetDocumentRequest": dict(number=0),
    "DailyCloseReply": dict(first=20261125, last=20261127, count=3),
    "DeclareRequest": dict(end=20261130),
    "ClearUnlockReply": dict(period_end=20261130, controls=CONTROLS),
    "ReadJournalRequest": dict(offset=8176, length=4088),
    "ReadJournalReply": dict(offset=8176, total=20000, data=b"\x01\x02\x03journal bytes"),
    "InspectReply": dict(machine_no=MACHINE, fiscal_card_no=CARD, taxpayer_no="91440101MA5CXXXX1X",
                         taxpayer_name="广州市示例餐饮有限公司", init_date=20260105, first_date=20260105,
                         last_date=20261127, daily_count=327, declaration_count=10, invoice_count=40211,
                         journal_bytes=1_234_567, chain_head=bytes(range(32, 64))),
    "ReportRequest": dict(kind=3, start=20261101, end=20261130),
    "ReportReply": dict(kind=3, start=20261101, end=20261130, totals=TOTALS),
    "RegisterNb": dict(random=b"\xde\xad\xbe\xef", card_no=CARD, mac1=b"\x01\x02\x03\x04"),
    "RegisterSignResponse": dict(mac2=b"\x05\x06\x07\x08"),
    "TerminalRegisterData": dict(mac2=b"\x05\x06\x07\x08"),
    "TerminalRegisterResponse": dict(pin=b"\x00\x11\x22\x33\x44\x55\x66\x77"),
    "IssueInvoiceData": dict(date=20261127, kind=1, number=1001, lines=TAX_AMOUNTS, total=15_800),
    "IssueInvoiceResponse": dict(fiscal_code=bytes.fromhex("0123456789abcdef")),
    "PeriodSums": SUMS,
    "DeclareDutyData": DECL_IN,
    "DeclareDutyResponse": DECL_OUT,
    "DailyCollectSignData": dict(date=20261127, sums=SUMS),
    "DailyCollectSignResponse": dict(signature=SIG),
    "UpdateControlsData": dict(key_id=1, ciphertext=bytes(range(24)), mac2=b"\x09\x0a\x0b\x0c"),
    "RollData": dict(code="1440012345", start=1001, end=1500, mac=b"\xaa\xbb\xcc\xdd"),
    "VerifyPinData": dict(pin=b"\x00\x11\x22\x33\x44\x55\x66\x77"),
    "VerifyPinResponse": dict(new_pin=b"\x88\x99\xaa\xbb\xcc\xdd\xee\xff"),
    "DataCollectData": dict(fiscal_card_no=CARD, declaration=DECL_IN, response=DECL_OUT),
    "ManagementCertificate": MGMT_CERT,
    "InspectorProof": dict(certificate=MGMT_CERT, signature=SIG[::-1]),
    "FiscalControls": dict(controls=CONTROLS, tax_items=TAX_ITEMS, period_end=20261031, sequence=2026103100),
    "FiscalIdentity": dict(card_no=CARD, machine_no=MACHINE, taxpayer_no="91440101MA5CXXXX1X",
                           taxpayer_id="440101000000001", taxpayer_name="广州市示例餐饮有限公司",
                           bureau_code="144010000000", filing_mode=1, valid_from=20260101, valid_to=20301231),
    "FiscalToday": dict(date=20261127, normal_count=12, return_count=0, void_count=1, normal_total=158_000,
                        return_total=0, last_number=1013, last_fiscal_code=bytes.fromhex("0123456789abcdef"),
                        closed_date=20261126, cumulative_normal=1_850_000, cumulative_return=10_000),
    "FiscalDeclaration": dict(status=1, start=20261101, end=20261130, totals=TOTALS, mac=b"\x11\x22\x33\x44",
                              signature=SIG),
    "FiscalRoll": dict(code="1440012345", start=1001, end=1500, next=1014),
    "UserControls": dict(machine_no=MACHINE, key_id=1, ciphertext=bytes(range(24)), mac2=b"\x09\x0a\x0b\x0c"),
    "UserTaxItems": dict(tax_items=TAX_ITEMS),
    "UserDeclaration": dict(status=1, record=dict(fiscal_card_no=CARD, declaration=DECL_IN, response=DECL_OUT)),
    "UserRoll": dict(machine_no=MACHINE, roll=dict(code="1440012345", start=1001, end=1500, mac=b"\xaa\xbb\xcc\xdd")),
    "UserTill": dict(machine_no=MACHINE, card_no=CARD),
}

FRAMES = [
    dict(kind=0x51, command=0x01, rid=7, status=0, payload=b""),
    dict(kind=0x52, command=0x20, rid=0x01020304, status=0x0502, payload=b""),
    dict(kind=0x52, command=0x50, rid=99, status=0, payload=bytes(range(256))),
    dict(kind=0x4B, command=0x30, rid=12, status=0, payload=b""),
]

APDUS = [
    dict(cla=0x00, ins=0xA4, p1=0x04, p2=0x00, data=b"TSAM01", le=None),
    dict(cla=0xC0, ins=0xF0, p1=0, p2=0, data=b"", le=16),
    dict(cla=0xC0, ins=0xF0, p1=0, p2=0, data=b"", le=256),
    dict(cla=0xC0, ins=0xF9, p1=0, p2=0, data=bytes(8), le=8),
    dict(cla=0xC0, ins=0xE6, p1=0, p2=0, data=bytes(300), le=None),
    dict(cla=0xC0, ins=0xE6, p1=0, p2=0, data=bytes(3), le=65536),
    dict(cla=0x00, ins=0x84, p1=0, p2=0, data=b"", le=None),
]


def main() -> None:
    out = {"layouts": [], "frames": [], "apdus": []}
    for name, construct, fw_name in PAIRS:
        value = VALUES[name]
        out["layouts"].append(dict(name=name, firmware=fw_name, hex=construct.build(value).hex(),
                                   fields=to_json(value)))
    for f in FRAMES:
        raw = frame.build_frame(f["kind"], f["command"], f["rid"], f["status"], f["payload"])
        out["frames"].append(dict(hex=raw.hex(), fields=to_json(f)))
    for a in APDUS:
        out["apdus"].append(dict(hex=apdu.Command.build(a).hex(), fields=to_json(a)))
    path = HERE / "golden.json"
    path.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print("wrote", path, len(out["layouts"]), "layouts,", len(out["frames"]), "frames,", len(out["apdus"]), "APDUs")


if __name__ == "__main__":
    main()
