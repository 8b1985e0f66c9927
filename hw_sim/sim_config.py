"""A simulated till's factory settings: config.json in its state folder (hw_sim.sim.SimTill).

    machine_no      16 digits, fixed at the factory
    model           1..255 bytes of text (default hw_sim.board.MODEL)
    baud            the line rate for pacing, > 0 (default 115200)
    cards           the card set the folder was set up with (a name of SimTill's card sets: "none", or
                    "demo" under testbed)
    flash_sectors   8..65536 sectors of 4 KiB (default 512 = 2 MiB, docs/FISCAL_MEMORY.md §9)

Rules: a missing file is created with the defaults and the arguments given; settings fixed at the factory
(machine number, card set, flash size) cannot be changed afterwards (SimTillError names another folder);
a folder from before card slots or flash sizes gets the default added.
"""

from __future__ import annotations

import json
from pathlib import Path

from .board import DEFAULT_FLASH_SECTORS, MODEL

DEFAULT_BAUD = 115200


class SimTillError(Exception):
    """The simulator cannot start or its firmware stopped; the message says what to do."""


def load_config(state: Path, machine_no: str | None = None, cards: str | None = None,
                flash_sectors: int | None = None, *, card_sets=("none",), default_cards: str = "none",
                default_machine_no: str | None = None) -> dict:
    """Read config.json, creating it with defaults (and the arguments given) when missing.  A new folder
    needs a machine number: `machine_no`, else `default_machine_no`."""
    path = state / "config.json"
    if path.exists():
        try:
            cfg = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise SimTillError("%s is not valid JSON: %s" % (path, e)) from None
        if machine_no is not None and machine_no != cfg.get("machine_no"):
            raise SimTillError("%s holds machine %s; a machine number is fixed at the factory, so use another "
                               "state folder for machine %s" % (state, cfg.get("machine_no"), machine_no))
        fresh = False
    else:
        if not (machine_no or default_machine_no):
            raise SimTillError("a new state folder %s needs a machine number (16 digits)" % state)
        cfg = {"machine_no": machine_no or default_machine_no, "model": MODEL, "baud": DEFAULT_BAUD}
        fresh = True
    if "cards" not in cfg:  # a new folder, or one from before the simulator had card slots
        cfg["cards"] = cards or default_cards
        fresh = True
    elif cards is not None and cards != cfg["cards"]:
        raise SimTillError("%s was set up with cards=%s; use another state folder for cards=%s"
                           % (state, cfg["cards"], cards))
    if "flash_sectors" not in cfg:
        cfg["flash_sectors"] = flash_sectors or DEFAULT_FLASH_SECTORS
        fresh = True
    elif flash_sectors is not None and flash_sectors != cfg["flash_sectors"]:
        raise SimTillError("%s has a flash of %d sectors; use another state folder for %d"
                           % (state, cfg["flash_sectors"], flash_sectors))
    problem = config_problem(cfg, card_sets)
    if problem:
        raise SimTillError("%s: %s" % (path, problem))
    if fresh:
        path.write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    return cfg


def config_problem(cfg: dict, card_sets=("none",)) -> str | None:
    no, model, baud = cfg.get("machine_no"), cfg.get("model"), cfg.get("baud")
    if not (isinstance(no, str) and len(no) == 16 and no.isascii() and no.isdigit()):
        return "machine_no must be 16 digits, got %r" % (no,)
    if not (isinstance(model, str) and 0 < len(model.encode()) <= 255):
        return "model must be text of 1..255 bytes, got %r" % (model,)
    if not (isinstance(baud, int) and baud > 0):
        return "baud must be a positive integer, got %r" % (baud,)
    if cfg.get("cards") not in card_sets:
        return "cards must be one of %s, got %r" % (", ".join(card_sets), cfg.get("cards"))
    sectors = cfg.get("flash_sectors")
    if not (isinstance(sectors, int) and 8 <= sectors <= 65536):
        return "flash_sectors must be an integer from 8 to 65536, got %r" % (sectors,)
    return None
