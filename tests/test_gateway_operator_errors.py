"""An operator who names the wrong database or file gets one sentence, exit status 1 and, with --json, one
JSON object {"ok": false, "error": CODE, "message": ...} on stdout: never a traceback.

Covered here: the station commands' database (a folder, a file that is not a database, a read-only place,
an unreachable PostgreSQL server) and output files (export --out to a read-only place).
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gateway.cli import main

TAXPAYER = "91440101MA5CXXXX1X"
REGISTER = ["register-taxpayer", "--test-keys", "--taxpayer-no", TAXPAYER, "--taxpayer-id", "440101000000001",
            "--name", "测试", "--bureau-code", "144010000000", "--item", "1:300:10101:餐饮服务"]


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_sentence(code, out, err, *words):
    assert code == 1 and out == "" and "Traceback" not in err
    assert err.startswith("fiscal-gateway: ") and err.count("\n") == 1, err
    for w in words:
        assert w in err, (w, err)


def assert_json_error(code, out, err, kind):
    assert code == 1 and err == ""
    doc = json.loads(out)
    assert doc["ok"] is False and doc["error"] == kind and doc["message"]
    return doc


@pytest.fixture
def read_only(tmp_path):
    """A read-only tmpfs mount (root ignores file modes, so only a read-only mount is really read-only)."""
    where = tmp_path / "ro"
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(where)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here: %s" % r.stderr.decode(errors="replace").strip())
    yield where
    subprocess.run(["umount", str(where)], capture_output=True)


def test_a_folder_given_as_the_database_is_named_as_a_folder(capsys, tmp_path):
    code, out, err = run(capsys, "export", "--db", str(tmp_path), "--test-keys", "--taxpayer", TAXPAYER)
    assert_one_sentence(code, out, err, "is a folder, not a database file", str(tmp_path / "fiscal-gateway.db"))
    assert not any(tmp_path.iterdir())  # nothing was created in it


def test_a_file_that_is_not_a_database_is_refused_and_left_alone(capsys, tmp_path):
    precious = tmp_path / "passwd"
    precious.write_text("root:x:0:0:root:/root:/bin/bash\n")
    code, out, err = run(capsys, *REGISTER, "--db", str(precious))
    assert_one_sentence(code, out, err, "is not a SQLite database")
    assert precious.read_text() == "root:x:0:0:root:/root:/bin/bash\n"


def test_a_database_error_is_json_with_json(capsys, tmp_path):
    code, out, err = run(capsys, "export", "--db", str(tmp_path), "--test-keys", "--taxpayer", TAXPAYER, "--json")
    assert "is a folder" in assert_json_error(code, out, err, "database")["message"]


def test_an_unreachable_postgresql_server_is_one_sentence_without_the_password(capsys):
    url = "postgresql://station:s3cret@127.0.0.1:1/bureau"  # port 1: nothing listens
    code, out, err = run(capsys, "export", "--db", url, "--test-keys", "--taxpayer", TAXPAYER)
    assert_one_sentence(code, out, err, "cannot use the database", "127.0.0.1:1", "server is running")
    assert "s3cret" not in err


def test_a_new_database_in_a_read_only_place_is_one_sentence(capsys, read_only):
    code, out, err = run(capsys, *REGISTER, "--db", str(read_only / "bureau.db"))
    assert_one_sentence(code, out, err, "cannot open or write the SQLite database", "writable")


def test_export_to_a_read_only_place_is_one_sentence_and_the_database_is_untouched(capsys, tmp_path, read_only):
    db = str(tmp_path / "bureau.db")
    assert run(capsys, *REGISTER, "--db", db)[0] == 0
    target = read_only / "taxpayer.json"
    code, out, err = run(capsys, "export", "--db", db, "--test-keys", "--taxpayer", TAXPAYER, "--out", str(target))
    assert_one_sentence(code, out, err, "cannot write or read", str(target), "choose another path")
    code, out, err = run(capsys, "export", "--db", db, "--test-keys", "--taxpayer", TAXPAYER, "--out", str(target),
                         "--json")
    assert_json_error(code, out, err, "file")


def test_the_installed_command_prints_no_traceback_either(tmp_path):
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "export", "--db", str(tmp_path), "--test-keys",
                        "--taxpayer", TAXPAYER], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "is a folder" in r.stderr


def test_info_on_a_port_that_does_not_exist_stays_json_with_json(capsys, tmp_path):
    code, out, err = run(capsys, "info", "--port", str(tmp_path / "no-such-port"), "--json")
    assert "no-such-port" in assert_json_error(code, out, err, "link")["message"]
    code, out, err = run(capsys, "info", "--port", str(tmp_path / "no-such-port"))
    assert_one_sentence(code, out, err, "no-such-port")
