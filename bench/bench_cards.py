"""Card benchmark.

    .venv/bin/python bench/bench_cards.py [--quick]

1. 税控码 per second from the simulated fiscal card over the full APDU path: an ISSUE_INVOICE command APDU
   built with protocol.apdu, through a CardSlot, parsed, checked against every card rule, MACed, the
   card's state updated, the response APDU returned.
2. Declaration verifications per second at the bureau: `gateway.verify.verify_declaration` on a 161-byte
   DATA_COLLECT record (check bytes, totals, MAC1, Ed25519 signature), against raw `cryptography`
   `Ed25519PublicKey.verify` of the same signature on a pre-built message, measured in the same run with
   interleaved rounds (best round of each kept).  Target: gateway/raw >= 0.8.
Writes bench/results/cards.json.  Informational only: no test asserts on timings.
"""
from __future__ import annotations

import gc
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cryptography  # noqa: E402

from gateway import issuance  # noqa: E402
from gateway import verify  # noqa: E402
from testbed import sequences  # noqa: E402
from testbed.demo_cards import MACHINE_NO, CardRig  # noqa: E402
from protocol import apdu  # noqa: E402
from protocol import crypto  # noqa: E402

from rates import best_rate  # noqa: E402

TARGET = 0.8


def main() -> None:
    quick = "--quick" in sys.argv
    n_code, n_ver, rounds = (500, 300, 3) if quick else (5_000, 3_000, 7)

    # a fiscal card with a roll big enough for every round
    total_codes = n_code * rounds + 10
    rig = CardRig(limits=issuance.Limits(20260131, 1_000_000, 4_000_000_000, 2_000_000))
    rig.register().load_roll(1, total_codes)
    slot = rig.fiscal
    lines = [dict(item=1, amount=1000), dict(item=2, amount=200)] + [dict(item=0, amount=0)] * 4
    number = [1]

    def codes(n: int) -> None:
        build, parse, transmit = apdu.Command.build, apdu.IssueInvoiceData.build, slot.transmit
        k = number[0]
        for i in range(k, k + n):
            data = parse(dict(date=20260105, kind=1, number=i, lines=lines, total=1200))
            resp = transmit(build(dict(cla=0xC0, ins=0xF2, p1=0, p2=0, data=data, le=8)))
            if resp[-2:] != b"\x90\x00":
                raise RuntimeError("ISSUE_INVOICE refused: %s" % resp.hex())
        number[0] = k + n

    # one declaration record as the bureau reads it from a user card
    decl_rig = CardRig().register()
    sequences.daily_close(decl_rig.fiscal, 20260105, sequences.period_sums((0, 0, 0), []))
    data, resp = sequences.declare(decl_rig.fiscal, decl_rig.user, 20260101, 20260105, sequences.period_sums((0, 0, 0), []))
    record = decl_rig.cards.fiscal_data.card_no + data + resp
    ks = decl_rig.keystore
    if not verify.verify_declaration(ks, record, MACHINE_NO).ok:
        raise RuntimeError("the benchmark declaration does not verify")
    raw_key = crypto.load_public_key(decl_rig.cards.fiscal.public_key)
    raw_msg = crypto.signed_message(crypto.SigKind.DECLARATION, data[:-1] + resp[:9])
    signature = apdu.DeclareDutyResponse.parse(resp).signature

    def gateway(n: int) -> None:
        v = verify.verify_declaration
        for _ in range(n):
            v(ks, record, MACHINE_NO)

    def raw(n: int) -> None:
        v = raw_key.verify
        for _ in range(n):
            v(signature, raw_msg)

    for warm in (gateway, raw):
        warm(10)
    gc.disable()
    try:
        code_rate = best_rate(codes, n_code, rounds)
        g_best = r_best = 0.0
        for _ in range(rounds):
            g_best = max(g_best, best_rate(gateway, n_ver, 1))
            r_best = max(r_best, best_rate(raw, n_ver, 1))
    finally:
        gc.enable()
    ratio = g_best / r_best
    result = {
        "fiscal_card_codes_per_s_full_apdu_path": round(code_rate),
        "declaration_verify_per_s": {"gateway": round(g_best), "raw_cryptography": round(r_best),
                                     "ratio": round(ratio, 2), "target_ratio": TARGET,
                                     "meets_target": ratio >= TARGET},
        "params": {"issue_invoice_apdus": n_code, "verify_calls": n_ver, "rounds": rounds,
                   "declaration_record_bytes": len(record), "quick": quick},
        "env": {"python": platform.python_version(), "cryptography": cryptography.__version__,
                "machine": platform.machine(), "platform": platform.platform()},
    }
    out = ROOT / "bench" / "results" / "cards.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print("税控码 from the simulated fiscal card (full APDU path): %8.0f /s" % code_rate)
    print("declaration verifications, gateway.verify:            %8.0f /s" % g_best)
    print("raw cryptography Ed25519 verify:                       %8.0f /s" % r_best)
    print("ratio gateway/raw: %.2f (target >= %.1f: %s)" % (ratio, TARGET, "met" if ratio >= TARGET else "NOT met"))
    print("wrote", out.relative_to(ROOT))


if __name__ == "__main__":
    main()
