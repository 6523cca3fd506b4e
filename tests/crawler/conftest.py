"""Shared crawler test fixtures.

* ``tests/crawler`` is put on ``sys.path`` so simulators import as ``servers.NAME``.
* ``crawl_ws`` (:class:`CrawlWorkspace`), on SQLite and on PostgreSQL (``store_url``):
  write a config with ``[[sources]]``,
  run ``leaksentry crawl NAME`` in a subprocess (the reactor cannot restart in
  pytest's process), read back the run record, the seen store and the
  documents the pipeline received.
  By default the pipeline is the metadata-only ``DocLogProcessor`` (so the
  crawler is tested on its own); ``crawl(..., scan=True)`` uses the real scanner.
  Test hooks are Scrapy settings, passed as ``leaksentry crawl -s NAME=VALUE``
  (``settings=``); :meth:`CrawlWorkspace.doclog_daemon` puts them in ``[daemon]
  crawl_command`` for crawls the daemon or a cluster worker starts.
* ``loopback`` starts a ``BaseHTTPRequestHandler`` class on a free port and
  stops it at teardown.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from leaksentry.config.toml import dumps

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

REPO = HERE.parent.parent


def to_toml(data: dict[str, Any]) -> str:
    """Enough TOML for test configs: top-level tables and arrays of tables."""
    return dumps(data)


@dataclass
class CrawlResult:
    proc: subprocess.CompletedProcess[str]
    run: dict[str, Any] | None

    @property
    def output(self) -> str:
        return self.proc.stdout + self.proc.stderr


@dataclass
class CrawlWorkspace:
    root: Path
    extra: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)  # what write() wrote last
    #: the PostgreSQL database of ``[state] url``; None: the SQLite file in ``state/``
    pg_url: str | None = None
    #: pg_dump of that database (``stored_text``)
    pg_dump: Any = None

    @property
    def config(self) -> Path:
        return self.root / "leaksentry.toml"

    @property
    def doclog(self) -> Path:
        return self.root / "docs.jsonl"

    @property
    def db(self) -> Path:
        return self.root / "state" / "state.db"

    def write(self, sources: list[dict[str, Any]], **sections: Any) -> Path:
        data: dict[str, Any] = {"state": self.state_table}
        data.update(self.extra)
        data.update(sections)
        data["sources"] = sources
        self.data = data
        self.config.write_text(to_toml(data), encoding="utf-8")
        return self.config

    def hooks(self, scan: bool = False, **settings: str) -> list[str]:
        """``-s NAME=VALUE`` arguments of a crawl: documents to the metadata log (unless
        ``scan``), then ``settings``."""
        s = {"LEAKSENTRY_DOCLOG": str(self.doclog)}
        if not scan:
            s["LEAKSENTRY_PROCESSOR"] = "crawler.pipelines.DocLogProcessor"
        s.update(settings)
        return [a for k, v in s.items() for a in ("-s", f"{k}={v}")]

    def doclog_daemon(self) -> None:
        """Rewrite the config so that crawls started by the daemon or a cluster worker
        use the metadata-only processor (``[daemon] crawl_command`` with ``-s``)."""
        daemon = dict(self.data.get("daemon", {}))
        daemon["crawl_command"] = [sys.executable, "-m", "leaksentry", "crawl", *self.hooks()]
        self.write(self.data["sources"], **{**{k: v for k, v in self.data.items()
                                               if k not in ("sources", "state")},
                                            "daemon": daemon})

    def crawl(self, name: str, *, scan: bool = False, timeout: float = 120,
              env: dict[str, str] | None = None, args: tuple[str, ...] = (),
              settings: dict[str, str] | None = None) -> CrawlResult:
        e = dict(os.environ)
        e.update({"LEAKSENTRY_HOME": str(self.root / "state"), "PYTHONUNBUFFERED": "1"})
        e.pop("LEAKSENTRY_CONFIG", None)
        e.update(env or {})
        proc = subprocess.run(
            [sys.executable, "-m", "leaksentry", "crawl", name, "--config", str(self.config),
             "--json", *self.hooks(scan, **(settings or {})), *args],
            capture_output=True, text=True, timeout=timeout, env=e, cwd=self.root,
        )
        run = None
        for line in proc.stdout.splitlines():
            if line.startswith("{") and '"outcome"' in line:
                run = json.loads(line)
        return CrawlResult(proc, run)

    def docs(self) -> list[dict[str, Any]]:
        if not self.doclog.exists():
            return []
        return [json.loads(x) for x in self.doclog.read_text().splitlines() if x.strip()]

    @property
    def state_table(self) -> dict[str, Any]:
        """The config's ``[state]``: this workspace's state dir, and its PostgreSQL."""
        table: dict[str, Any] = {"dir": str(self.root / "state")}
        if self.pg_url:
            table["url"] = self.pg_url
        return table

    @property
    def has_store(self) -> bool:
        return bool(self.pg_url) or self.db.exists()

    def store(self) -> Any:
        """The workspace's store, as the crawl opens it (``Store(settings.state)``)."""
        from leaksentry.config import StateConfig
        from leaksentry.store import Store

        return Store(StateConfig.model_validate(self.state_table))

    def query(self, sql: str, *params: Any) -> list[Any]:
        """Rows (by name and index) through the store: the same on both engines."""
        from leaksentry.config import StateConfig
        from leaksentry.store import Store

        store = Store(StateConfig.model_validate(self.state_table), readonly=True)
        try:
            return list(store.conn.execute(sql, params).fetchall())
        finally:
            store.close()

    def execute(self, sql: str, *params: Any) -> int:
        """A write behind the crawler's back (a test's setup); rows changed."""
        store = self.store()
        try:
            with store.transaction() as tx:
                return int(tx.execute(sql, params).rowcount)
        finally:
            store.close()

    def stored_text(self) -> str:
        """Everything the store holds, for the privacy checks: the SQLite file's bytes
        (with its WAL), or the PostgreSQL database's pg_dump."""
        if self.pg_url:
            return str(self.pg_dump(self.pg_url))
        return "".join(f.read_bytes().decode("latin-1")
                       for f in self.db.parent.glob("state.db*"))

    def seen(self, source: str) -> dict[str, Any]:
        return {r["item_id"]: r for r in
                self.query("SELECT * FROM seen_items WHERE source = ?", source)}

    def runs(self, source: str) -> list[Any]:
        return self.query("SELECT * FROM source_runs WHERE source = ? ORDER BY id", source)


@pytest.fixture
def crawl_ws(tmp_path: Path, request: pytest.FixtureRequest,
             store_url: str | Path) -> CrawlWorkspace:
    if isinstance(store_url, Path):
        return CrawlWorkspace(tmp_path)
    server = request.getfixturevalue("postgres_server")
    return CrawlWorkspace(tmp_path, pg_url=store_url, pg_dump=server.dump)


@pytest.fixture
def loopback():
    from servers.loopback import LoopbackServer

    started: list[LoopbackServer] = []

    def start(handler: type, **state: Any) -> LoopbackServer:
        srv = LoopbackServer(handler, **state).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture
def pastebin():
    from servers import pastebin_api

    srv, state = pastebin_api.start()
    yield state
    srv.stop()


NGINX = "/usr/sbin/nginx"


@pytest.fixture
def nginx_dir(tmp_path: Path):
    """nginx (Debian package) with ``autoindex on`` over a fresh directory, started in
    the foreground on a free loopback port with a temporary config."""
    import shutil
    import socket
    import time

    binary = NGINX if Path(NGINX).exists() else shutil.which("nginx")
    if not binary:
        pytest.skip("nginx is not installed (Debian package nginx-light; `make system-deps`)")
    root = tmp_path / "nginxdir"
    root.mkdir()
    run = tmp_path / "nginx-run"
    run.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    user = "user root root;" if os.geteuid() == 0 else ""
    conf = run / "nginx.conf"
    conf.write_text(f"""
{user}
daemon off;
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    types {{ text/plain txt csv; text/html html; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{ root {root}; autoindex on; }}
    }}
}}
""")
    proc = subprocess.Popen([binary, "-p", str(run), "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                proc.kill()
                raise RuntimeError(f"nginx did not start: {err.strip()}") from None
            time.sleep(0.05)
    yield root, f"http://127.0.0.1:{port}/"
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def faults():
    from servers import faults as faults_mod

    srv, state = faults_mod.start()
    yield state
    srv.stop()


@pytest.fixture(scope="session")
def fingerprints(tmp_path_factory: pytest.TempPathFactory):
    """A key and fingerprint file for 200 fictional patients (leaksentry.synth, seed 21);
    returns ``(matching_section, patients)`` — the first 20 patients for planting."""
    import csv

    from leaksentry.synth import patients, register_rows
    from pipelines.match import build_fingerprints, generate_key, read_key

    d = tmp_path_factory.mktemp("crawler-fp")
    with (d / "register.csv").open("w", newline="") as f:
        csv.writer(f).writerows(register_rows(200, seed=21))
    generate_key(d / "key")
    build_fingerprints(d / "register.csv", read_key(d / "key"), d / "fp", hkid_column="hkid",
                       hn_column="hn", ref_column="ref")
    (d / "register.csv").unlink()  # only keyed digests remain
    return {"key": str(d / "key"), "fingerprints": str(d / "fp")}, list(patients(20, seed=21))
