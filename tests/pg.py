"""A throwaway PostgreSQL server for the gateway tests, from Debian's packages.

    from pg import pg_server, pg_url, store          # fixtures; `store` runs a test on SQLite and PostgreSQL

`pg_server` (session): initdb + pg_ctl from /usr/lib/postgresql/<newest>/bin into a temporary data folder,
listening on 127.0.0.1 on a free port (and a socket in the data folder), trust authentication for the
loopback only; stopped and deleted at the end.  PostgreSQL refuses to run as root, so as root the server
runs as the `postgres` user (Debian's packages create it) through runuser.  Without the packages the
tests that need it skip, saying which package to install.

`pg_url` (per test): a new empty database on that server.  `store`: an opened, migrated gateway store on
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
                  "--locale=C.UTF-8" if _has_locale("C.UTF-8") else "--locale=C")
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

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; its URL."""
        import psycopg
        self.n += 1
        name = name or "t%d_%d" % (os.getpid(), self.n)
        with psycopg.connect("host=127.0.0.1 port=%d user=postgres dbname=postgres" % self.port,
                             autocommit=True) as conn:
            conn.execute('CREATE DATABASE "%s"' % name)
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except RuntimeError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


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
    return pg_server.create_database()


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
