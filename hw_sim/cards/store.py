"""Card state on disk: one JSON file per card, written atomically (the I/O edge of the card core).

    {"format": "ftk-card", "version": 1, "kind": "fiscal" | "user" | "management", "state": {...}}

The state is the card's EEPROM dataclass (hw_sim.cards.fiscal.FiscalState ...) with bytes written as
{"$hex": "..."}.  Session RAM is never saved: a reloaded card is a card after power-off.  Writes go to a
temporary file in the same folder, are fsynced, then renamed over the old file, so a crash leaves the old
state or the new one, never a torn file.  The file holds the card's secret keys, as a card's EEPROM does:
it is created readable by its owner only.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from protocol.fileio import write_atomic

from .fiscal import FiscalCard, FiscalState
from .management import ManagementCard, ManagementState
from .user import UserCard, UserState

FORMAT = "ftk-card"
VERSION = 1
KINDS = {"fiscal": (FiscalCard, FiscalState), "user": (UserCard, UserState),
         "management": (ManagementCard, ManagementState)}


class CardFileError(Exception):
    """A card file that is not ours, of another version, or damaged."""


def _to_json(obj):
    if isinstance(obj, (bytes, bytearray)):
        return {"$hex": bytes(obj).hex()}
    if isinstance(obj, dict):
        return {k: _to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_json(v) for v in obj]
    return obj


def _from_json(obj):
    if isinstance(obj, dict):
        if set(obj) == {"$hex"}:
            return bytes.fromhex(obj["$hex"])
        return {k: _from_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_json(v) for v in obj]
    return obj


def dumps(card) -> str:
    """The card's EEPROM as JSON text (stable: keys sorted)."""
    state = _to_json(dataclasses.asdict(card.state))
    return json.dumps({"format": FORMAT, "version": VERSION, "kind": card.KIND, "state": state},
                      sort_keys=True, ensure_ascii=False, indent=0)


def loads(text: str, *, rng=None):
    """A card (powered off) from `dumps` text; CardFileError explains a refusal."""
    try:
        doc = json.loads(text)
        if doc.get("format") != FORMAT or doc.get("version") != VERSION:
            raise CardFileError("not an %s v%d file" % (FORMAT, VERSION))
        card_cls, state_cls = KINDS[doc["kind"]]
        return card_cls(state_cls(**_from_json(doc["state"])), rng=rng)
    except CardFileError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise CardFileError("damaged card file: %s" % e) from None


def save_card(card, path: str | os.PathLike) -> None:
    """Write atomically (temp file, fsync, rename, fsync the folder)."""
    write_atomic(path, dumps(card).encode("utf-8"))


def load_card(path: str | os.PathLike, *, rng=None):
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise CardFileError("cannot read %s: %s" % (path, e.strerror)) from None
    return loads(text, rng=rng)
