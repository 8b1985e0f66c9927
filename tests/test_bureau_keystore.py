"""The bureau key store: encrypted at rest, test keys only in test mode."""

import json
import os
import stat

import pytest

from gateway.bureau_errors import KeyStoreError, TestKeyRefused
from gateway.keystore import KeyStore
from protocol.crypto import TEST_MASTER_KEYS, MasterKey

FAST = 2 ** 10  # scrypt cost for tests; production files use 2**15
PROD = MasterKey(0x01, bytes(range(16)))


def test_save_and_open_round_trip(tmp_path):
    ks = KeyStore([PROD])
    ks.generate()
    path = tmp_path / "keys.json"
    ks.save(path, "correct horse battery staple", scrypt_n=FAST)
    again = KeyStore.open(path, "correct horse battery staple")
    assert again.key_ids == [1, 2] and again.master(1) == PROD and again.master() == ks.master()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_the_file_holds_no_key_in_clear(tmp_path):
    path = tmp_path / "keys.json"
    KeyStore([PROD]).save(path, "pw", scrypt_n=FAST)
    text = path.read_text()
    assert PROD.key.hex() not in text and json.loads(text)["kdf"]["name"] == "scrypt"


def test_a_wrong_passphrase_is_refused(tmp_path):
    path = tmp_path / "keys.json"
    KeyStore([PROD]).save(path, "pw", scrypt_n=FAST)
    with pytest.raises(KeyStoreError, match="wrong passphrase"):
        KeyStore.open(path, "pW")


def test_weakened_kdf_parameters_are_detected(tmp_path):
    path = tmp_path / "keys.json"
    KeyStore([PROD]).save(path, "pw", scrypt_n=FAST)
    doc = json.loads(path.read_text())
    doc["kdf"]["n"] = 2 ** 4
    path.write_text(json.dumps(doc))
    with pytest.raises(KeyStoreError):
        KeyStore.open(path, "pw")


@pytest.mark.parametrize("content", ["", "[]", '{"format": "ftk-keystore", "version": 2}',
                                     '{"format": "ftk-keystore", "version": 1, "kdf": 3}'])
def test_foreign_or_damaged_files_are_refused(tmp_path, content):
    path = tmp_path / "keys.json"
    path.write_text(content)
    with pytest.raises(KeyStoreError):
        KeyStore.open(path, "pw")


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(KeyStoreError, match="cannot read"):
        KeyStore.open(tmp_path / "none.json", "pw")


def test_an_empty_passphrase_is_refused(tmp_path):
    with pytest.raises(KeyStoreError):
        KeyStore([PROD]).save(tmp_path / "k.json", "")


def test_test_keys_are_refused_outside_test_mode():
    with pytest.raises(TestKeyRefused):
        KeyStore([TEST_MASTER_KEYS[0x81]])
    with pytest.raises(TestKeyRefused):  # test bytes under a production key id are still a test key
        KeyStore([MasterKey(0x05, TEST_MASTER_KEYS[0x81].key)])


def test_a_test_mode_store_holds_test_keys_only():
    with pytest.raises(TestKeyRefused):
        KeyStore([PROD], test_mode=True)
    with pytest.raises(TestKeyRefused):
        KeyStore.for_tests().generate()
    assert KeyStore.for_tests().key_ids == [0x81, 0x82]


def test_opening_needs_the_stores_own_mode(tmp_path):
    path = tmp_path / "test.json"
    KeyStore.for_tests().save(path, "pw", scrypt_n=FAST)
    with pytest.raises(TestKeyRefused, match="test-mode"):
        KeyStore.open(path, "pw")
    assert KeyStore.open(path, "pw", test_mode=True).test_mode


def test_master_is_the_newest_generation_unless_asked():
    ks = KeyStore([PROD, MasterKey(0x03, bytes(16))])
    assert ks.master().key_id == 3 and ks.master(1) is PROD
    assert [k.key_id for k in ks.masters()] == [3, 1]
    with pytest.raises(KeyStoreError, match="no master key with id 0x02"):
        ks.master(2)
    with pytest.raises(KeyStoreError):
        KeyStore().master()
    with pytest.raises(KeyStoreError, match="already"):
        ks.add(PROD)
    assert ks.generate().key_id == 4


def test_repr_never_shows_key_material():
    ks = KeyStore([PROD])
    assert PROD.key.hex() not in repr(ks) and "key_ids=[1]" in repr(ks)
