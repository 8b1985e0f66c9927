"""fiscal-gateway station commands: every argument checked with a clear message, --json everywhere, and a
filing from a card file through to the clear-unlock."""
from __future__ import annotations

import json

import pytest

from gateway.cli import main
from hw_sim.cards import store as card_store
from pg import Hall


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "bureau.db")


@pytest.mark.parametrize("args,message", [
    (["register-machine", "--taxpayer", "T", "--machine", "123", "--deadline", "2026-01-31", "--single-limit", "1",
      "--cumulative-limit", "1", "--return-limit", "1"], "machine number must be 16 digits"),
    (["register-machine", "--taxpayer", "T", "--machine", "1234567890123456", "--deadline", "2026-02-30",
      "--single-limit", "1", "--cumulative-limit", "1", "--return-limit", "1"], "must be a date"),
    (["register-machine", "--taxpayer", "T", "--machine", "1234567890123456", "--deadline", "2026-01-31",
      "--single-limit", "1.005", "--cumulative-limit", "1", "--return-limit", "1"], "at most two decimals"),
    (["register-taxpayer", "--taxpayer-no", "X", "--taxpayer-id", "1", "--name", "n", "--bureau-code", "1",
      "--item", "1:300"], "INDEX:RATE_BASIS_POINTS:CODE:NAME"),
    (["issue-cards", "--taxpayer", "T", "--machine", "1234567890123456", "--fiscal-card", "xyz",
      "--user-card", "3201100000000001", "--valid-from", "2026-01-01", "--valid-to", "2030-12-31", "--out", "x"],
     "16 hex digits"),
    (["sell", "--taxpayer", "T", "--machine", "1234567890123456", "--code", "12", "--start", "1", "--end", "2"],
     "invoice code must be 10 digits"),
    (["file", "--taxpayer", "T", "--income", "-5"], "at most two decimals"),
])
def test_bad_arguments_are_refused_with_a_clear_message(capsys, args, message):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_keys_must_be_named(capsys, db):
    code, _, err = run(capsys, "export", "--taxpayer", "T", "--db", db)
    assert code == 1 and "--keystore FILE (production keys) or --test-keys" in err


def test_register_then_refuse_a_duplicate_with_json(capsys, db):
    args = ["register-taxpayer", "--db", db, "--test-keys", "--taxpayer-no", "91440101MA5CXXXX1X",
            "--taxpayer-id", "440101000000001", "--name", "测试", "--bureau-code", "144010000000",
            "--item", "1:300:10101:餐饮服务", "--roll-quota", "2", "--json"]
    code, out, _ = run(capsys, *args)
    assert code == 0 and json.loads(out)["roll_quota"] == 2
    code, out, _ = run(capsys, *args)
    assert code == 1 and json.loads(out)["refused"] == "conflict"
    code, out, err = run(capsys, *args[:-1])
    assert code == 1 and "refused (conflict): taxpayer 91440101MA5CXXXX1X is already registered" in err


def test_a_filing_from_a_card_file_shortfall_then_accepted(capsys, tmp_path, db):
    from gateway.db import open_store
    hall = Hall(open_store(db)).ready_to_file()
    card = tmp_path / "user.json"
    card_store.save_card(hall.rig.cards.user, card)
    common = ["--db", db, "--test-keys", "--today", "2026-02-20", "--taxpayer", hall.taxpayer_no, "--card", str(card)]
    code, out, _ = run(capsys, "read-card", *common, "--json")
    assert code == 0 and json.loads(out)["pending"][0]["recorded_income_fen"] == hall.income
    code, out, _ = run(capsys, "file", *common, "--income", "0.01")
    assert code == 3 and "REFUSED" in out and "--explanation" in out
    filing = tmp_path / "filing.csv"
    filing.write_text("taxpayer_no,period_end,income\n%s,2026-01-31,%d.%02d\n" % ((hall.taxpayer_no,) + divmod(hall.income, 100)))
    code, out, _ = run(capsys, "file", *common, "--income-file", str(filing), "--json")
    doc = json.loads(out)
    assert code == 0 and doc["outcome"] == "accepted" and doc["surcharge"]["days_late"] == 5
    assert doc["clear_unlock"]["deadline"] == 20260228
    code, out, _ = run(capsys, "export", "--db", db, "--test-keys", "--taxpayer", hall.taxpayer_no, "--json")
    assert code == 0 and len(json.loads(out)["declarations"][0]["comparisons"]) == 2
    code, _, err = run(capsys, "read-card", *common[:-1], str(tmp_path / "missing.json"))
    assert code == 1 and "cannot use card file" in err
