"""A throwaway PostgreSQL server for the gateway tests, from Debian's packages.

    from pg import pg_server, pg_url, store          # fixtures; `store` runs a test on SQLite and PostgreSQL

`pg_server` (session): initdb + pg_ctl from /usr/lib/postgresql/<newest>/bin into a temporary data folder,
listening on 127.0.0.1 on a free port (and a socket in the data folder), trust authentication for the
loopback only; stopped and deleted at the end.  PostgreSQL refuses to run as root, so as root the server
runs as the `postgres` user (Debian's packages create it) through runuser.  Without the packages the
tests that need it skip, saying which package to install.

`pg_url` (per test): a new database on that server, a copy of a template migrated once.  `store`: an opened, migrated gateway store on
SQLite (a file in tmp_path) or on PostgreSQL (a new database), the test running once on each.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

PACKAGES = "postgresql (Debian: apt-get install postgresql)"


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """One postgres process on loopback; `url(db)` gives a SQLAlchemy URL for one of its databases."""

    def __init__(self, fsync: bool = True) -> None:
        bindir = _bin_dir()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed: no /usr/lib/postgresql/*/bin/pg_ctl; install " + PACKAGES)
        self.bindir = bindir
        self.prefix: list[str] = []
        self.dir = Path(tempfile.mkdtemp(prefix="fiscal-pg-"))
        if os.geteuid() == 0:  # postgres will not run as root
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no 'postgres' user to run the server as") from None
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self.data = self.dir / "data"
        self.port = _free_port()
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8" if _has_locale("C.UTF-8") else "--locale=C", *([] if fsync else ["--no-sync"]))
        opts = "-p %d -c listen_addresses=127.0.0.1 -k %s -c fsync=%s -c max_connections=100" % (
            self.port, self.dir, "on" if fsync else "off")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"), "-o", opts, "-w", "-t", "30",
                  "start")
        self.n = 0

    def _run(self, tool: str, *args: str) -> None:
        r = subprocess.run([*self.prefix, str(self.bindir / tool), *args], capture_output=True, text=True,
                           cwd=self.dir)
        if r.returncode:
            log = self.dir / "server.log"
            raise RuntimeError("%s failed (%d): %s%s" % (tool, r.returncode, r.stderr.strip(),
                                                         "\n" + log.read_text()[-2000:] if log.exists() else ""))

    def url(self, database: str = "postgres") -> str:
        return "postgresql+psycopg://postgres@127.0.0.1:%d/%s" % (self.port, database)

    def create_database(self, name: str | None = None, template: str | None = None) -> str:
        """A new database (a copy of `template` if given, else empty); its URL."""
        import psycopg
        self.n += 1
        name = name or "t%d_%d" % (os.getpid(), self.n)
        with psycopg.connect("host=127.0.0.1 port=%d user=postgres dbname=postgres" % self.port,
                             autocommit=True) as conn:
            conn.execute('CREATE DATABASE "%s"%s' % (name, ' TEMPLATE "%s"' % template if template else ""))
        return self.url(name)

    def migrated_database(self) -> str:
        """A new database with the gateway schema: a copy of a template migrated once (fast)."""
        if not getattr(self, "_template", None):
            from gateway.db import open_store
            url = self.create_database("gateway_template")
            open_store(url).close()
            self._template = "gateway_template"
        return self.create_database(template=self._template)

    def stop(self) -> None:
        pid_file = self.data / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, 3)  # SIGQUIT: immediate shutdown
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _running(pid):
                time.sleep(0.02)
        except (OSError, ValueError, IndexError):
            pass  # gone (or never started)
        shutil.rmtree(self.dir, ignore_errors=True)


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (a container's init may never reap it)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _has_locale(name: str) -> bool:
    try:
        out = subprocess.run(["locale", "-a"], capture_output=True, text=True).stdout
    except OSError:
        return False
    return name.lower().replace("-", "") in out.lower().replace("-", "")


def start_server(fsync: bool = True) -> PgServer:
    """A running PgServer, or pytest.skip saying why not (for use outside fixtures too)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'psycopg[binary]')")
    try:
        return PgServer(fsync=fsync)
    except RuntimeError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def pg_server():
    server = start_server(fsync=False)  # tests: durability is the bench's business, speed is ours
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server) -> str:
    """A new database with the gateway schema already migrated."""
    return pg_server.migrated_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    from gateway.db import open_store
    if request.param == "sqlite":
        url = "sqlite:///%s" % (tmp_path / "bureau.db")
    else:
        url = request.getfixturevalue("pg_url")
    s = open_store(url)
    yield s
    s.close()


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(port)


# ---- the tax hall and one in-process till, for the gateway tests -------------------------------------------------
class RigClient:
    """gateway.link.TillClient's call/call_ok over testbed/rigs.py's in-process till (no port, no thread)."""

    port_name = "tillrig"

    def __init__(self, rig) -> None:
        self.rig = rig
        self.calls: list[str] = []

    def call(self, name: str, request: dict | None = None):
        self.calls.append(name)
        status, parsed, _ = self.rig.call(name.upper(), **(request or {}))
        return status, parsed

    def call_ok(self, name: str, request: dict | None = None):
        from gateway.link import StatusError
        status, parsed = self.call(name, request)
        if status:
            raise StatusError(name, status)
        return parsed


class Hall:
    """The bureau (a Station on `store`) and the demo till in process (testbed.rigs.TillRig), registered
    with the demo cards' own numbers, so the cards the rig holds are the cards the bureau issued."""

    def __init__(self, store, *, name: str = "window-1", roll_quota: int = 2) -> None:
        from gateway.keystore import KeyStore
        from gateway.stations import Station
        from testbed.rigs import TillRig
        self.rig = TillRig()
        self.client = RigClient(self.rig)
        self.st = Station(store, KeyStore.for_tests(), name=name, clock=lambda: self.rig.rtc.date)
        self.store = store
        self.roll_quota = roll_quota

    @property
    def taxpayer_no(self) -> str:
        from testbed import demo_cards
        return demo_cards.TAXPAYER.taxpayer_no

    @property
    def machine_no(self) -> str:
        from testbed import demo_cards
        return demo_cards.MACHINE_NO

    def reader(self):
        from gateway.readers import SimReader
        return SimReader(self.rig.user_slot)

    def register(self) -> "Hall":
        from gateway import stations
        from testbed import demo_cards
        stations.register_taxpayer(self.st, demo_cards.TAXPAYER, tax_items=demo_cards.TAX_ITEMS, roll_quota=self.roll_quota)
        stations.register_machine(self.st, demo_cards.TAXPAYER.taxpayer_no, demo_cards.MACHINE_NO, demo_cards.LIMITS)
        stations.issue_cards(self.st, demo_cards.TAXPAYER.taxpayer_no, demo_cards.MACHINE_NO, fiscal_card_no=demo_cards.FISCAL_CARD_NO,
                      user_card_no=demo_cards.USER_CARD_NO, valid_from=demo_cards.VALID_FROM, valid_to=demo_cards.VALID_TO)
        return self

    def initialize(self) -> "Hall":
        from gateway import stations
        self.rig.rtc.set(20260105, 90000)
        stations.initialize_till(self.st, self.client, self.machine_no, date=20260105, time=90000)
        return self

    def sell(self, start: int = 1, end: int = 100, code: str = "1440012345") -> dict:
        from gateway import stations
        return stations.sell_roll(self.st, self.reader(), self.taxpayer_no, self.machine_no, code=code, start=start, end=end)

    def trade(self, days=((20260105, 4), (20260106, 3), (20260107, 3))) -> int:
        """Invoices over `days` ((date, count), ...), item 1 and 2 alternating; the total (fen)."""
        total = 0
        for day, n in days:
            self.rig.rtc.set(day, 100000)
            for i in range(n):
                total += self.rig.ok("ISSUE_INVOICE", **self.rig.invoice(1000 + 100 * i, item=1 + i % 2)).total
        return total

    def declare(self, on: int = 20260201, end: int = 20260131):
        self.rig.rtc.set(on, 90000)
        self.rig.ok("DAILY_CLOSE")
        return self.rig.ok("DECLARE", end=end)

    def ready_to_file(self, window_day: int = 20260220) -> "Hall":
        """Registered, initialized, a roll sold and loaded, 10 invoices, declared; the clock at the window."""
        self.register().initialize()
        self.sell()
        self.rig.ok("LOAD_ROLL")
        self.income = self.trade()
        self.declaration = self.declare()
        self.rig.rtc.set(window_day, 93000)
        return self

    def counts(self) -> dict:
        """Rows per table: what a refusal must leave unchanged."""
        from sqlalchemy import func, select
        from gateway.db.models import Base
        with self.store.transaction() as s:
            return {t.name: s.execute(select(func.count()).select_from(t)).scalar()
                    for t in Base.metadata.sorted_tables}


@pytest.fixture
def hall(store):
    return Hall(store)
