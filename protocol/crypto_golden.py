"""Golden vectors for crypto suite 1, built from fixed inputs under the published TEST master key 0x81.

    python -m protocol.crypto_golden > tests/vectors/crypto_golden.json   # regenerate (review the diff!)
    python -m protocol.crypto_golden --markdown                           # tables for docs/CRYPTO.md

The stored JSON is the reference: tests recompute every output from the stored inputs and compare, so a
change to any layout, label or algorithm shows up as a vector failure, not silently.
"""
from __future__ import annotations

import json
import sys
from datetime import date

from protocol import crypto

CARD_NO = bytes.fromhex("3201000000000001")
USER_CARD_NO = bytes.fromhex("3201100000000001")
MACHINE_NO = "1234567890123456"


def golden_vectors() -> dict:
    mk = crypto.TEST_MASTER_KEY
    keys = crypto.derive_fiscal_card_keys(mk, CARD_NO, USER_CARD_NO)
    derived = {p.name: crypto.derive_key(mk, p, CARD_NO, USER_CARD_NO if p is crypto.Purpose.REG_UC else None).hex()
               for p in crypto.Purpose}

    inv_date, inv_type, inv_no, items, total = date(2024, 3, 15), 1, 1, [(1, 12345), (2, 500)], 12845
    inv = dict(date=inv_date.isoformat(), type=inv_type, number=inv_no, items=[list(i) for i in items], total=total)
    inv_data = crypto.pack_invoice_data(inv_date, inv_type, inv_no, items, total)
    code = crypto.fiscal_code(keys.invoice, inv_data, CARD_NO, MACHINE_NO)

    ctl = crypto.ControlData(date(2024, 4, 30), 1_000_000, 50_000_000, 2_000_000, date(2024, 3, 31), 7)
    blob = crypto.seal_controls(keys, MACHINE_NO, ctl)

    roll_code, roll_start, roll_end = "1320024300", 1, 1000
    rnd = bytes.fromhex("a1b2c3d4")
    mac1 = crypto.register_mac1(keys.reg_fc, rnd, CARD_NO)
    assert keys.reg_uc is not None
    decl_payload = bytes(range(64))
    daily_payload = bytes.fromhex("20240315") + bytes(range(40))
    mac_key = bytes.fromhex("0123456789abcdeffedcba9876543210")

    return {
        "suite": {"id": crypto.SUITE_ID, "name": crypto.SUITE_NAME},
        "test_master_keys": {f"0x{k:02X}": v.key.hex() for k, v in crypto.TEST_MASTER_KEYS.items()},
        "identity": {"master_key_id": f"0x{mk.key_id:02X}", "card_no": CARD_NO.hex(),
                     "user_card_no": USER_CARD_NO.hex(), "machine_no": MACHINE_NO},
        "mac": [{"key": mac_key.hex(), "data": d.hex(), "mac8": crypto.mac(mac_key, d).hex(),
                 "mac4": crypto.mac4(mac_key, d).hex()} for d in (b"", b"abc", bytes(range(32)), bytes(range(33)))],
        "kdf": {"master": mk.key.hex(), "label": "FTK1/INVOICE", "context": CARD_NO.hex(), "length": 16,
                "output": crypto.kdf(mk.key, b"FTK1/INVOICE", CARD_NO, 16).hex()},
        "derived_keys": derived,
        "public_key": keys.public_key.hex(),
        "fiscal_code": {"invoice": inv, "invoice_data": inv_data.hex(), "code": code.hex(),
                        "printed": crypto.format_fiscal_code(code)},
        "control_data": {"fields": {"deadline": ctl.deadline.isoformat(), "single_limit": ctl.single_limit,
                                    "cumulative_limit": ctl.cumulative_limit, "return_limit": ctl.return_limit,
                                    "period_end": ctl.period_end.isoformat(), "seq": ctl.seq},
                         "plaintext": ctl.pack().hex(), "sealed": blob.hex()},
        "roll_mac": {"invoice_code": roll_code, "start": roll_start, "end": roll_end,
                     "mac": crypto.roll_mac(keys.roll_mac, roll_code, roll_start, roll_end, CARD_NO, MACHINE_NO).hex()},
        "registration": {"random": rnd.hex(), "mac1": mac1.hex(),
                         "mac2": crypto.register_mac2(keys.reg_uc, rnd, CARD_NO, mac1).hex()},
        "declaration": {"payload": decl_payload.hex(),
                        "mac1": crypto.declaration_mac(keys.decl_mac, decl_payload, CARD_NO, MACHINE_NO).hex(),
                        "signature": crypto.sign_record(keys, crypto.SigKind.DECLARATION, decl_payload).hex()},
        "daily": {"payload": daily_payload.hex(),
                  "signature": crypto.sign_record(keys, crypto.SigKind.DAILY, daily_payload).hex()},
    }


def markdown(v: dict) -> str:
    rows = [("test master key 0x81", v["test_master_keys"]["0x81"]),
            ("test master key 0x82", v["test_master_keys"]["0x82"]),
            ("fiscal card no.", v["identity"]["card_no"]), ("user card no.", v["identity"]["user_card_no"]),
            ("machine no.", v["identity"]["machine_no"])]
    rows += [(f"MAC key={m['key']} data={m['data'] or '(empty)'}", f"{m['mac8']} (APDU: {m['mac4']})")
             for m in v["mac"]]
    rows += [(f"K_{p}", k) for p, k in v["derived_keys"].items()]
    rows += [("Ed25519 public key", v["public_key"]),
             ("ISSUE_INVOICE data (43)", v["fiscal_code"]["invoice_data"]),
             ("税控码 bytes", v["fiscal_code"]["code"]), ("税控码 printed", v["fiscal_code"]["printed"]),
             ("control plaintext (24)", v["control_data"]["plaintext"]),
             ("UPDATE_CONTROLS data (29)", v["control_data"]["sealed"]),
             (f"roll MAC {v['roll_mac']['invoice_code']} {v['roll_mac']['start']}-{v['roll_mac']['end']}",
              v["roll_mac"]["mac"]),
             (f"registration MAC1 (random {v['registration']['random']})", v["registration"]["mac1"]),
             ("registration MAC2", v["registration"]["mac2"]),
             ("declaration MAC1 (payload 00..3f)", v["declaration"]["mac1"]),
             ("declaration signature", v["declaration"]["signature"]),
             ("daily signature", v["daily"]["signature"])]
    return "| vector | value (hex unless noted) |\n|---|---|\n" + "\n".join(f"| {a} | `{b}` |" for a, b in rows)


if __name__ == "__main__":
    vectors = golden_vectors()
    print(markdown(vectors) if "--markdown" in sys.argv else json.dumps(vectors, indent=2, ensure_ascii=False))
