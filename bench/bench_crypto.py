"""Crypto suite benchmark.

    .venv/bin/python bench/bench_crypto.py [--quick]

Prints 税控码 per second (raw ``fiscal_code``) and declaration-signature verifications per second through
``protocol.crypto.verify_record`` (public key passed as raw bytes, as a gateway holds it) against raw
``cryptography`` ``Ed25519PublicKey.verify`` on a pre-loaded key object and pre-built message, measured
in the same run with interleaved rounds (best round of each kept).  Target: wrapper/raw >= 0.8.
Writes bench/results/crypto.json.  Informational only: no test asserts on timings.
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
from datetime import date  # noqa: E402

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey  # noqa: E402

from protocol import crypto  # noqa: E402
from protocol.crypto_golden import CARD_NO, MACHINE_NO, USER_CARD_NO  # noqa: E402

from rates import best_rate  # noqa: E402

DECLARATION_PAYLOAD_LEN = 200  # roughly a DECLARE_DUTY command + response


def main() -> None:
    quick = "--quick" in sys.argv
    n_code, n_ver, rounds = (2_000, 500, 3) if quick else (50_000, 5_000, 7)

    keys = crypto.derive_fiscal_card_keys(crypto.TEST_MASTER_KEY, CARD_NO, USER_CARD_NO)
    inv = crypto.pack_invoice_data(date(2024, 3, 15), 1, 1, [(1, 12345), (2, 500)], 12845)
    payload = bytes(i & 0xFF for i in range(DECLARATION_PAYLOAD_LEN))
    sig = crypto.sign_record(keys, crypto.SigKind.DECLARATION, payload)
    pub_bytes = keys.public_key
    raw_key = Ed25519PublicKey.from_public_bytes(pub_bytes)
    raw_msg = crypto.signed_message(crypto.SigKind.DECLARATION, payload)
    kind = crypto.SigKind.DECLARATION

    def codes(n: int) -> None:
        f, k = crypto.fiscal_code, keys.invoice
        for _ in range(n):
            f(k, inv, CARD_NO, MACHINE_NO)

    def wrapper(n: int) -> None:
        v = crypto.verify_record
        for _ in range(n):
            v(pub_bytes, kind, payload, sig)

    def raw(n: int) -> None:
        v = raw_key.verify
        for _ in range(n):
            v(sig, raw_msg)

    for warm in (wrapper, raw, codes):  # warm caches
        warm(10)
    gc.disable()
    try:
        code_rate = best_rate(codes, n_code, rounds)
        w_best = r_best = 0.0
        for _ in range(rounds):  # interleave so drift hits both equally
            w_best = max(w_best, best_rate(wrapper, n_ver, 1))
            r_best = max(r_best, best_rate(raw, n_ver, 1))
    finally:
        gc.enable()
    ratio = w_best / r_best

    result = {
        "suite": {"id": crypto.SUITE_ID, "name": crypto.SUITE_NAME},
        "fiscal_codes_per_s": round(code_rate),
        "declaration_verify_per_s": {"wrapper": round(w_best), "raw_cryptography": round(r_best),
                                     "ratio": round(ratio, 3), "target_ratio": 0.8,
                                     "meets_target": ratio >= 0.8},
        "params": {"fiscal_code_calls": n_code, "verify_calls": n_ver, "rounds": rounds,
                   "declaration_payload_bytes": DECLARATION_PAYLOAD_LEN, "quick": quick},
        "env": {"python": platform.python_version(), "cryptography": cryptography.__version__,
                "machine": platform.machine(), "platform": platform.platform()},
    }
    print(f"suite {c.SUITE_ID} {c.SUITE_NAME}")
    print(f"税控码 (fiscal_code)          : {code_rate:12,.0f} /s")
    print(f"declaration verify, wrapper   : {w_best:12,.0f} /s")
    print(f"declaration verify, raw       : {r_best:12,.0f} /s")
    print(f"ratio wrapper/raw             : {ratio:12.3f}  (target >= 0.8: {'ok' if ratio >= 0.8 else 'MISSED'})")
    out = ROOT / "bench" / "results" / "crypto.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
