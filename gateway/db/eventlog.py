"""The bureau's event log: append-only, hash-chained, authenticated, anchored.

The chain (one definition, used by the stations, migration 0002 and the verifier):
    seq        1, 2, 3 ... without gaps, in the order the events were committed;
    body(row)  canonical JSON (keys sorted, no spaces, UTF-8, ensure_ascii off) of
               {"v": 1, "seq", "at" (ISO 8601, microseconds, UTC without offset), "station", "taxpayer_id",
                "kind", "data", "prev"};
    hash       SHA-256(body) in hex; "prev" is the previous row's hash, GENESIS (64 zeros) for seq 1;
    mac        HMAC-SHA256(event_key(master), bytes.fromhex(hash)) in hex, under the key store's newest master
               key (`key_id` names its generation); event_key(master) = HMAC-SHA256(master.key,
               b"ftk-event-log-v1").  A MAC covers its row's hash and so every row before it.  Rows that
               migration 0002 chained have key_id 0 and no MAC: the next authenticated row vouches for them.
Anchors: every row of the ANCHORED tables written in a transaction records in `event_seq` the sequence
number of the newest event when it was committed (its own event, if the transaction logged one).  A row
whose event_seq is beyond the end of the log proves that the log's tail was cut.

Appending (install(sessionmaker)): events added to a session (gateway.stations.common.log, or session.add)
are held back from every flush and appended at commit, after everything else is flushed, under the log's
lock: BEGIN IMMEDIATE on SQLite (the whole transaction is already the only writer), a transaction-scoped
advisory lock on PostgreSQL, taken after the referenced taxpayers' key-share locks so that nothing waits
while it is held: the chain stays linear with any number of writers and never deadlocks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass, field

from sqlalchemy import event as sa_event
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from ..bureau_errors import KeyStoreError
from .models import ANCHORED, Event, utcnow

GENESIS = "0" * 64
VERSION = 1
LEGACY_KEY_ID = 0  # rows chained by migration 0002: no MAC of their own
PG_LOCK = 1887241  # pg_advisory_xact_lock key of the log (migrations use 1887240)
_KEY_LABEL = b"ftk-event-log-v1"
_PENDING = "ftk_pending_events"
_TOUCHED = "ftk_anchored_rows"
_KEY = "ftk_event_key"


# ---- the chain -------------------------------------------------------------------------------------------------
def iso(at: dt.datetime) -> str:
    return at.replace(tzinfo=None).isoformat(timespec="microseconds")


def body(seq: int, at: dt.datetime, station: str, taxpayer_id: int | None, kind: str, data, prev: str) -> bytes:
    """The hashed bytes of one row (canonical JSON of its fields and the previous hash)."""
    doc = {"v": VERSION, "seq": seq, "at": iso(at), "station": station, "taxpayer_id": taxpayer_id, "kind": kind,
           "data": data, "prev": prev}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def row_hash(seq: int, at: dt.datetime, station: str, taxpayer_id: int | None, kind: str, data, prev: str) -> str:
    return hashlib.sha256(body(seq, at, station, taxpayer_id, kind, data, prev)).hexdigest()


def event_key(master) -> bytes:
    """The log's MAC key, derived from a master key generation (never stored)."""
    return hmac.new(master.key, _KEY_LABEL, hashlib.sha256).digest()


def row_mac(key: bytes, hash_hex: str) -> str:
    return hmac.new(key, bytes.fromhex(hash_hex), hashlib.sha256).hexdigest()


def normal(data) -> object:
    """`data` as it reads back from a JSON column (integer keys become strings, tuples lists)."""
    return json.loads(json.dumps(data, ensure_ascii=False))


# ---- appending -------------------------------------------------------------------------------------------------
def use_key(session: Session, keystore) -> None:
    """Authenticate the events this session appends with `keystore`'s newest master key."""
    if _KEY not in session.info:
        master = keystore.master()
        session.info[_KEY] = (master.key_id, event_key(master))


def install(factory: sessionmaker) -> None:
    """Hold events back from flushes and append them, chained, at commit (see the module docstring)."""
    sa_event.listen(factory, "before_flush", _hold_back)
    sa_event.listen(factory, "before_commit", _append)
    sa_event.listen(factory, "after_rollback", _forget)


def _hold_back(session: Session, _ctx, _instances) -> None:
    pending = session.info.setdefault(_PENDING, [])
    touched = session.info.setdefault(_TOUCHED, [])
    for obj in list(session.new):
        if isinstance(obj, Event) and obj.seq is None:
            session.expunge(obj)
            pending.append(obj)
    for obj in list(session.new) + list(session.dirty):
        if isinstance(obj, ANCHORED) and not any(o is obj for o in touched):
            touched.append(obj)


def _forget(session: Session) -> None:
    for k in (_PENDING, _TOUCHED):
        session.info.pop(k, None)


def _append(session: Session) -> None:
    # R-ONE-HOUSEHOLD: events are appended to one chained, authenticated log
    session.flush()  # everything else first, before the log's lock is taken
    pending = session.info.pop(_PENDING, [])
    touched = session.info.pop(_TOUCHED, [])
    if not pending and not touched:
        return
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        ids = sorted({e.taxpayer_id for e in pending if e.taxpayer_id is not None})
        if ids:  # the events' foreign-key checks must not wait while the log's lock is held
            session.execute(text("SELECT id FROM taxpayers WHERE id = ANY(:ids) FOR KEY SHARE"), {"ids": ids})
        session.execute(text("SELECT pg_advisory_xact_lock(%d)" % PG_LOCK))
    head = session.execute(select(Event.seq, Event.hash).order_by(Event.seq.desc()).limit(1)).first()
    seq, prev = (head[0], head[1]) if head else (0, GENESIS)
    key = session.info.get(_KEY)
    for ev in pending:
        seq += 1
        ev.at = ev.at or utcnow()
        ev.data = normal(ev.data)
        ev.seq, ev.prev_hash = seq, prev
        ev.hash = row_hash(seq, ev.at, ev.station, ev.taxpayer_id, ev.kind, ev.data, prev)
        if key:
            ev.key_id, ev.mac = key[0], row_mac(key[1], ev.hash)
        prev = ev.hash
        session.add(ev)
    for obj in touched:
        if obj in session:
            obj.event_seq = seq
    session.flush()
    _forget(session)  # that flush saw the anchored rows again: they are done


# ---- verifying -------------------------------------------------------------------------------------------------
@dataclass
class LogReport:
    """What verify() found.  `problems`: [{"seq", "kind", "detail"}] in log order; `first_bad_seq` the first."""
    rows: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    authenticated_through: int = 0  # every row up to here is vouched for by a valid MAC
    unvouched: int = 0  # rows chained by migration 0002 that no later MAC vouches for yet
    test_keys: bool = False
    problems: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_seq(self) -> int | None:
        return self.problems[0]["seq"] if self.problems else None

    def add(self, seq: int, kind: str, detail: str) -> None:
        self.problems.append({"seq": seq, "kind": kind, "detail": detail})

    def as_dict(self) -> dict:
        return {"ok": self.ok, "rows": self.rows, "head_seq": self.head_seq, "head_hash": self.head_hash,
                "authenticated_through": self.authenticated_through, "unvouched": self.unvouched,
                "test_keys": self.test_keys,
                "first_bad_seq": self.first_bad_seq, "problems": self.problems}


# problem kinds (stable strings for scripts)
CHANGED = "changed"  # the row's contents do not give its hash
MISSING = "missing"  # sequence numbers skip: rows deleted
LINK = "broken-link"  # prev_hash is not the previous row's hash: rows deleted, inserted or reordered
FORGED = "forged"  # the MAC does not verify: a row written (or re-hashed) without the bureau's key
UNAUTHENTICATED = "unauthenticated"  # no MAC where one is required
UNCHAINED = "unchained"  # no sequence number or hash at all
TRUNCATED = "truncated"  # another table's row names an event after the end of the log


def verify(session: Session, keystore) -> LogReport:
    """Check every event row in seq order and every anchor; every problem, the first one first."""
    # R-ONE-HOUSEHOLD: a changed, deleted, inserted or truncated event is found
    rep = LogReport(test_keys=bool(getattr(keystore, "test_mode", False)))
    keys: dict[int, bytes | None] = {}
    expect_seq, prev = 1, GENESIS
    legacy_allowed = True
    unvouched: list[int] = []  # legacy rows waiting for a later MAC
    unchained = session.execute(select(func.count()).select_from(Event).where(
        (Event.seq.is_(None)) | (Event.hash.is_(None)))).scalar()
    rows = session.execute(select(Event.seq, Event.at, Event.station, Event.taxpayer_id, Event.kind, Event.data,
                                  Event.prev_hash, Event.hash, Event.key_id, Event.mac)
                           .where(Event.seq.is_not(None)).order_by(Event.seq)).yield_per(1000)
    for seq, at, station, taxpayer_id, kind, data, prev_hash, h, key_id, mac in rows:
        rep.rows += 1
        if seq != expect_seq:
            if seq > expect_seq:
                rep.add(expect_seq, MISSING, "events %s are missing (the log jumps from %d to %d)" % (
                    "%d" % expect_seq if seq == expect_seq + 1 else "%d-%d" % (expect_seq, seq - 1), expect_seq - 1, seq))
        if prev_hash != prev:
            rep.add(seq, LINK, "its previous hash is not the hash of event %d: rows were removed, inserted or "
                    "reordered before it" % (seq - 1))
        if h is None or row_hash(seq, at, station, taxpayer_id, kind, data, prev_hash or "") != h:
            rep.add(seq, CHANGED, "its contents do not give its hash: the row was changed")
        if mac is None:
            if key_id == LEGACY_KEY_ID and legacy_allowed:
                unvouched.append(seq)
            else:
                rep.add(seq, UNAUTHENTICATED, "it carries no MAC: it was not written by a station")
        else:
            legacy_allowed = False
            key = _key(keystore, keys, key_id)
            if key is None:
                rep.add(seq, FORGED, "its MAC names key generation %s, which the key store does not hold" % key_id)
            elif h is None or not hmac.compare_digest(row_mac(key, h), mac):
                rep.add(seq, FORGED, "its MAC does not verify: the row was written or re-hashed without the "
                        "bureau's key")
            elif not rep.problems:
                rep.authenticated_through = seq
                unvouched.clear()
        expect_seq, prev = seq + 1, h or ""
        rep.head_seq, rep.head_hash = seq, h or ""
    rep.unvouched = len(unvouched)
    if unchained:
        rep.add(expect_seq, UNCHAINED, "%d event row(s) have no sequence number or hash: written around the "
                "log" % unchained)
    for model in ANCHORED.__subclasses__():
        top = session.execute(select(func.max(model.event_seq))).scalar()
        if top is not None and top > rep.head_seq:
            rep.add(rep.head_seq + 1, TRUNCATED, "%s rows record event %d, but the log ends at %d: events %d-%d "
                    "were cut from its end" % (model.__tablename__, top, rep.head_seq, rep.head_seq + 1, top))
    rep.problems.sort(key=lambda p: p["seq"])
    return rep


def _key(keystore, cache: dict, key_id) -> bytes | None:
    if key_id not in cache:
        try:
            cache[key_id] = event_key(keystore.master(key_id)) if key_id else None
        except KeyStoreError:
            cache[key_id] = None
    return cache[key_id]


class LogUnreadable(Exception):
    """The log cannot be checked at all (no such database, unreachable, not migrated): nothing was verified."""


def verify_database(url: str | None, keystore) -> LogReport:
    """Open the database at `url` (see gateway.db.database_url) read-only in intent, without creating or
    migrating it, and verify its log."""
    from pathlib import Path

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from .engine import Store, database_url, make_engine
    full = database_url(url)
    where = make_url(full).render_as_string(hide_password=True)
    if make_url(full).get_backend_name() == "sqlite":
        path = make_url(full).database
        if not path or path == ":memory:" or not Path(path).is_file():
            raise LogUnreadable("no database file %s: give --db FILE or URL of the bureau database" % path)
        with open(path, "rb") as f:  # opening would turn an empty or foreign file into a database
            if f.read(16) != b"SQLite format 3\x00":
                raise LogUnreadable("%s is not a bureau database (not a SQLite file)" % path)
    store = Store(make_engine(full))
    try:
        store.engine.connect().close()  # unreachable is not "not a bureau database"
        with store.transaction() as s:
            try:
                version = s.execute(text("SELECT version_num FROM alembic_version")).scalar()
            except SQLAlchemyError:
                raise LogUnreadable("%s is not a bureau database (no schema version)" % where) from None
            head = _head_revision()
            if version != head:
                raise LogUnreadable("%s is at schema revision %s, not %s: open it with a station (or run the "
                                    "migrations) first" % (where, version, head))
            return verify(s, keystore)
    except SQLAlchemyError as e:
        first = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        raise LogUnreadable("cannot read the database %s: %s" % (where, first)) from None
    finally:
        store.close()


def _head_revision() -> str:
    from alembic.script import ScriptDirectory

    from .engine import alembic_config
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
