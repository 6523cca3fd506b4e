"""PostgreSQL fixtures: a real server from Debian's ``postgresql`` package (initdb and
pg_ctl under /usr/lib/postgresql/<version>/bin), in a temp dir, on a free loopback port,
with password authentication, stopped at teardown.

initdb refuses to run as root: when the tests run as root (CI's ``make test`` may), the
server is made and run by the ``postgres`` user (``runuser -u postgres --``) in a temp
dir owned by it.

- ``postgres_server``: one server for the session (a :class:`PgServer`);
  ``database()`` makes a fresh empty database and returns its URL.
- ``postgres_url``: a fresh database of that server for one test, with
  LEAKSENTRY_STATE_PASSWORD set (the store reads the password from there).
- ``store_url``: parametrised over ``sqlite`` and ``postgresql``: the store target of one
  test (a SQLite file in tmp_path, or a fresh PostgreSQL database); ``state_config(...)``
  turns it into the ``[state]`` table of a config.
- ``postgres_outage``: a function-scoped server of its own, for tests that stop it.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

PASSWORD = "pg-test-password"
USER = "leaksentry"
_COUNTER = itertools.count()


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name.split(".")[0]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    bin: Path
    dir: Path
    port: int = 0
    as_user: list[str] = field(default_factory=list)  # ["runuser", "-u", "postgres", "--"]

    @property
    def data(self) -> Path:
        return self.dir / "data"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.as_user, *args], check=check, capture_output=True,
                              text=True, timeout=120)

    def init(self, *, durable: bool = False) -> PgServer:
        """``durable``: PostgreSQL's default fsync and WAL settings (a benchmark's)."""
        if os.getuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres", "postgres")
        pwfile = self.dir / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.as_user:
            shutil.chown(pwfile, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", USER,
                  "--pwfile", str(pwfile), "--auth-local=scram-sha-256",
                  "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8")
        pwfile.unlink()
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("max_connections = 200\n")
            if durable:
                return self
            # a test server: no fsync (the bench starts its own with defaults). Commits
            # stay synchronous: a stop (-m immediate, a crash) keeps every committed row
            conf.write("fsync = off\nfull_page_writes = off\nshared_buffers = 32MB\n")
        return self

    def start(self, timeout: float = 60.0) -> PgServer:
        self.port = self.port or _free_port()
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1"
                f" -c unix_socket_directories={self.dir}")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                  str(self.dir / "server.log"), "-o", opts, "-w", "-t", str(int(timeout)),
                  "start")
        return self

    def stop(self) -> None:
        if self.data.exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                      "-w", "stop", check=False)

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{db}"

    def database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(_COUNTER)}"
        with psycopg.connect(self.url(), password=PASSWORD, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def dump(self, url: str) -> str:
        """``pg_dump`` of a database: its whole text (schema and rows)."""
        env = dict(os.environ, PGPASSWORD=PASSWORD)
        out = subprocess.run([str(self.bin / "pg_dump"), "--no-owner", url], env=env,
                             check=True, capture_output=True, text=True, timeout=120)
        return out.stdout


def _server(workdir: Path) -> Iterator[PgServer]:
    bindir = _bin_dir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (Debian package postgresql;"
                    " `make system-deps`)")
    srv = PgServer(bindir, workdir).init().start()
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PgServer]:
    # not under pytest's tmp dirs: they are 0700 root's, and the server may run as postgres
    yield from _server(Path(tempfile.mkdtemp(prefix="leaksentry-pg-")))


@pytest.fixture
def postgres_outage() -> Iterator[PgServer]:
    """A server of this test's own, free to be stopped and started again."""
    yield from _server(Path(tempfile.mkdtemp(prefix="leaksentry-pg-")))


@pytest.fixture
def postgres_url(postgres_server: PgServer, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("LEAKSENTRY_STATE_PASSWORD", PASSWORD)
    return postgres_server.database()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> str | Path:
    """The store of one test: a SQLite file, or a fresh PostgreSQL database (its tables
    made by ``leaksentry db upgrade``'s code path)."""
    if request.param == "sqlite":
        return tmp_path / "state.db"
    server: PgServer = request.getfixturevalue("postgres_server")
    monkeypatch.setenv("LEAKSENTRY_STATE_PASSWORD", PASSWORD)
    url = server.database()
    from leaksentry.store import Store

    Store(url, upgrade=True).close()
    return url


def state_config(target: str | Path, state_dir: Path) -> dict[str, Any]:
    """The ``[state]`` table for a store target of ``store_url``."""
    if isinstance(target, Path):
        return {"dir": str(target.parent)}
    return {"dir": str(state_dir), "url": target}


def open_store(target: str | Path, state_dir: Path) -> Any:
    """A :class:`leaksentry.store.Store` on a ``store_url`` target, its keys in
    ``state_dir`` (as ``Store(settings.state)`` opens it)."""
    from leaksentry.config import StateConfig
    from leaksentry.store import Store

    if isinstance(target, Path):
        target = state_dir / target.name
    return Store(StateConfig.model_validate(state_config(target, state_dir)))


@pytest.fixture
def store_dump(request: pytest.FixtureRequest) -> Any:
    """``store_dump(store) -> bytes``: everything a store holds, for the privacy tests
    (a SQLite file's bytes, its WAL and its SQL dump; a PostgreSQL database's pg_dump)."""

    def dump(store: Any) -> bytes:
        if store.engine == "sqlite":
            path = Path(store.path)
            store.close()
            raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
            return raw + "\n".join(store.conn.raw.iterdump()).encode()
        server: PgServer = request.getfixturevalue("postgres_server")
        return server.dump(str(store.path)).encode()

    return dump
