"""The bureau's master keys at rest: one file, encrypted under a passphrase.

    {"format": "ftk-keystore", "version": 1,
     "kdf": {"name": "scrypt", "n": 32768, "r": 8, "p": 1, "salt": hex(16)},
     "cipher": "AES-256-GCM", "nonce": hex(12), "ciphertext": hex}

key = scrypt(passphrase UTF-8, salt, n, r, p, 32 bytes); the plaintext is JSON
{"test_mode": bool, "keys": [{"key_id": 1, "key": hex(16)}, ...]}; the associated data is the header
(every field but nonce and ciphertext, as canonical JSON), so the KDF parameters cannot be weakened
without the tag failing.  A wrong passphrase and a damaged file are indistinguishable by design
(KeyStoreError either way).  Files are written atomically and readable by their owner only.

Test keys (protocol.crypto: key id bit 7, or the published bytes) live only in a store in test mode, and
a store in test mode holds only test keys: a production store refuses a test key and a test store
refuses a production key (TestKeyRefused), so a test run can never issue a fiscal card.  The master
key in use is the highest key id (the newest generation) unless one is asked for.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from protocol.crypto import TEST_MASTER_KEYS, MasterKey, is_test_key
from protocol.fileio import write_atomic

from .bureau_errors import KeyStoreError, TestKeyRefused

FORMAT = "ftk-keystore"
VERSION = 1
SCRYPT_N = 2 ** 15
SCRYPT_R, SCRYPT_P = 8, 1


class KeyStore:
    """Master keys by key id.  `KeyStore.for_tests()` gives the published test keys in test mode."""

    def __init__(self, keys: Iterable[MasterKey] = (), *, test_mode: bool = False):
        self.test_mode = test_mode
        self._keys: dict[int, MasterKey] = {}
        for k in keys:
            self.add(k)

    @classmethod
    def for_tests(cls) -> "KeyStore":
        return cls(TEST_MASTER_KEYS.values(), test_mode=True)

    def __repr__(self) -> str:
        return "KeyStore(key_ids=%s%s)" % (self.key_ids, ", TEST MODE" if self.test_mode else "")

    @property
    def key_ids(self) -> list[int]:
        return sorted(self._keys)

    def add(self, key: MasterKey) -> None:
        if is_test_key(key) and not self.test_mode:
            raise TestKeyRefused("test key 0x%02X refused: this key store is not in test mode" % key.key_id)
        if not is_test_key(key) and self.test_mode:
            raise TestKeyRefused("production key 0x%02X refused: a test-mode key store holds test keys only"
                                 % key.key_id)
        if key.key_id in self._keys:
            raise KeyStoreError("key id 0x%02X is already in the key store" % key.key_id)
        self._keys[key.key_id] = key

    def generate(self, key_id: int | None = None) -> MasterKey:
        """A new random production master key (the next key id by default)."""
        if self.test_mode:
            raise TestKeyRefused("a test-mode key store cannot generate production keys")
        if key_id is None:
            used = [k for k in self._keys if k < 0x80]
            key_id = max(used) + 1 if used else 0x01
        if not 0x01 <= key_id <= 0x7F:
            raise KeyStoreError("production key ids are 0x01-0x7F, not 0x%02X" % key_id)
        key = MasterKey(key_id, os.urandom(16))
        self.add(key)
        return key

    def master(self, key_id: int | None = None) -> MasterKey:
        """The key of generation `key_id`, or the newest."""
        if not self._keys:
            raise KeyStoreError("the key store holds no master key")
        if key_id is None:
            return self._keys[max(self._keys)]
        try:
            return self._keys[key_id]
        except KeyError:
            raise KeyStoreError("no master key with id 0x%02X (have %s)" % (
                key_id, ", ".join("0x%02X" % k for k in self.key_ids))) from None

    def masters(self) -> list[MasterKey]:
        """Every generation, newest first (verifiers try them in this order)."""
        return [self._keys[k] for k in sorted(self._keys, reverse=True)]

    # ---- at rest -----------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, passphrase: str, *, scrypt_n: int = SCRYPT_N) -> None:
        if not passphrase:
            raise KeyStoreError("an empty passphrase is refused")
        header = {"format": FORMAT, "version": VERSION, "cipher": "AES-256-GCM",
                  "kdf": {"name": "scrypt", "n": scrypt_n, "r": SCRYPT_R, "p": SCRYPT_P,
                          "salt": os.urandom(16).hex()}}
        plain = json.dumps({"test_mode": self.test_mode,
                            "keys": [{"key_id": k.key_id, "key": k.key.hex()} for k in self._keys.values()]})
        nonce = os.urandom(12)
        ct = AESGCM(_derive(passphrase, header["kdf"])).encrypt(nonce, plain.encode(), _aad(header))
        doc = dict(header, nonce=nonce.hex(), ciphertext=ct.hex())
        write_atomic(path, (json.dumps(doc, indent=1) + "\n").encode())

    @classmethod
    def open(cls, path: str | os.PathLike, passphrase: str, *, test_mode: bool = False) -> "KeyStore":
        """Decrypt a key store.  `test_mode` must match the store's own mode (TestKeyRefused otherwise)."""
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as e:
            raise KeyStoreError("cannot read key store %s: %s" % (path, e.strerror)) from None
        except ValueError:
            raise KeyStoreError("%s is not a key store (not JSON)" % path) from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
            raise KeyStoreError("%s is not an %s v%d file" % (path, FORMAT, VERSION))
        header = {k: doc.get(k) for k in ("format", "version", "cipher", "kdf")}
        try:
            if header["cipher"] != "AES-256-GCM" or header["kdf"]["name"] != "scrypt":
                raise KeyStoreError("%s: unsupported cipher or KDF" % path)
            plain = AESGCM(_derive(passphrase, header["kdf"])).decrypt(
                bytes.fromhex(doc["nonce"]), bytes.fromhex(doc["ciphertext"]), _aad(header))
            content = json.loads(plain)
            keys = [MasterKey(k["key_id"], bytes.fromhex(k["key"])) for k in content["keys"]]
            stored_mode = bool(content["test_mode"])
        except InvalidTag:
            raise KeyStoreError("wrong passphrase, or the key store %s is damaged" % path) from None
        except (KeyError, TypeError, ValueError) as e:
            raise KeyStoreError("damaged key store %s: %s" % (path, e)) from None
        if stored_mode != test_mode:
            raise TestKeyRefused("%s is a %s key store; open it with test_mode=%s" % (
                path, "test-mode" if stored_mode else "production", stored_mode))
        return cls(keys, test_mode=test_mode)


def _aad(header: dict) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def _derive(passphrase: str, kdf: dict) -> bytes:
    try:
        return Scrypt(salt=bytes.fromhex(kdf["salt"]), length=32, n=int(kdf["n"]), r=int(kdf["r"]),
                      p=int(kdf["p"])).derive(passphrase.encode("utf-8"))
    except (KeyError, TypeError, ValueError) as e:
        raise KeyStoreError("bad scrypt parameters: %s" % e) from None
