"""`leaksentry db upgrade` and `db migrate-from-sqlite`, end to end through the real CLI
(subprocesses) against a real PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from leaksentry.config import StateConfig
from leaksentry.store import Store, evidence, outbox, runs, seen
from pipelines.model import RunSummary

#: an HKID-shaped item id: stranger-controlled text that must never be stored in clear
PLANTED = "A1234563"
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "leaksentry", *args, "--config", str(cfg)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})


def config(tmp_path: Path, url: str) -> Path:
    cfg = tmp_path / "leaksentry.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path / "pgstate"}"\nurl = "{url}"\n'
                   'password_env = "LEAKSENTRY_STATE_PASSWORD"\n\n'
                   '[[sources]]\nname = "pastes"\nkind = "watch"\nurl = "http://127.0.0.1:9/"\n'
                   'allow_private = true\n')
    cfg.chmod(0o600)
    return cfg


def local_store(path: Path) -> dict[str, int]:
    """A single machine's store with a row in every component; its row counts."""
    store = Store(path)
    with store.transaction() as tx:
        seen.discovered(tx, "pastes", f"paste-{PLANTED}", f"https://p.example/{PLANTED}",
                        now=T0)
        seen.processed(tx, "pastes", f"paste-{PLANTED}", "ab" * 32, now=T0)
        seen.set_state(tx, "pastes", "etag", '"x"')
        runs.record_run(tx, RunSummary(source="pastes", started_at=T0, finished_at=T0,
                                       outcome="ok", discovered=1, fetched=1))
        for n in range(3):
            alert = outbox.insert_alert(tx, kind="hit", severity="high", created_at=T0,
                                        payload={"n": n}, sha256=f"{n:064x}")
            outbox.insert_delivery(tx, alert, "mail", state="pending", now=T0)
        tx.execute("INSERT INTO es_spool(kind, index_suffix, doc_id, body, created_at)"
                   " VALUES ('hits', 'hits-2026.01', 'd1', '{}', ?)", (T0.isoformat(),))
        evidence.insert(tx, evidence.EvidenceRow(hit_id=7, file="f", sha256="00" * 32,
                                                 size=3, recipients=["fp"], stored_at=T0))
        evidence.audit(tx, 7, "open", "soc", "host", None, T0)
    counts = {t: store.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in ("seen_items", "source_state", "source_runs", "source_health",
                        "alerts", "deliveries", "es_spool", "evidence", "evidence_audit")}
    store.close()
    return counts


def test_db_upgrade_then_migrate_from_sqlite(tmp_path, postgres_url, postgres_server):
    cfg = config(tmp_path, postgres_url)
    # a fresh PostgreSQL store: every command refuses it until `db upgrade`
    r = cli(cfg, "hits")
    assert r.returncode == 2 and "run `leaksentry db upgrade`" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = cli(cfg, "crawl", "pastes")  # a crawl too, before fetching anything
    assert r.returncode == 2 and "run `leaksentry db upgrade`" in r.stderr, r.stderr
    r = cli(cfg, "db", "upgrade")
    assert r.returncode == 0, r.stderr
    assert "hits 0 → 3" in r.stdout and "outbox 0 → 2" in r.stdout
    r = cli(cfg, "db", "upgrade")
    assert r.returncode == 0 and "schema up to date" in r.stdout
    assert cli(cfg, "hits").returncode == 0

    sqlite_file = tmp_path / "local" / "state.db"
    counts = local_store(sqlite_file)
    r = cli(cfg, "db", "migrate-from-sqlite", str(sqlite_file))
    assert r.returncode == 0, r.stderr
    for table, n in counts.items():
        assert f"{table} " in r.stdout and f" {n} rows" in r.stdout
    assert "copied seen.key" in r.stdout
    key = tmp_path / "pgstate" / "seen.key"
    assert key.read_bytes() == (sqlite_file.parent / "seen.key").read_bytes()
    assert key.stat().st_mode & 0o777 == 0o600

    store = Store(StateConfig(dir=tmp_path / "pgstate", url=postgres_url))
    for table, n in counts.items():
        assert store.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == n
    item = seen.get_item(store.conn, "pastes", f"paste-{PLANTED}")  # unsealed with the key
    assert item is not None and item.status == "done" and PLANTED in (item.url or "")
    assert seen.get_state(store.conn, "pastes", "etag") == '"x"'
    with store.transaction() as tx:  # new rows continue after the copied ids
        new = outbox.insert_alert(tx, kind="test", severity="low", created_at=T0, payload={})
    assert new == 4
    assert evidence.audit_log(store.conn, 7)[0]["user"] == "soc"
    store.close()

    # `status` reads the shared store (no SQLite file in the state directory)
    r = cli(cfg, "status", "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    (pastes,) = [x for x in got["sources"] if x["name"] == "pastes"]
    assert pastes["runs"] == 1 and pastes["healthy"] is True
    assert got["outbox"]["pending"] == 3 and got["spool_depth"] == 1
    assert not (tmp_path / "pgstate" / "state.db").exists()

    # a second copy would double every row: refused, one line, nothing written
    r = cli(cfg, "db", "migrate-from-sqlite", str(sqlite_file))
    assert r.returncode == 2 and "already holds rows" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    dump = postgres_server.dump(postgres_url)
    assert "seen_items" in dump and PLANTED not in dump
    for out in (r.stdout, r.stderr):
        assert PLANTED not in out


def test_migrate_from_sqlite_needs_a_postgres_url(tmp_path):
    cfg = tmp_path / "leaksentry.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path}"\n')
    r = cli(cfg, "db", "migrate-from-sqlite", str(tmp_path / "nope.db"))
    assert r.returncode == 2 and "[state] url is not set" in r.stderr


def test_db_upgrade_on_sqlite_creates_or_migrates_the_file(tmp_path):
    cfg = tmp_path / "leaksentry.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path / "s"}"\n')
    r = cli(cfg, "db", "upgrade")
    assert r.returncode == 0 and (tmp_path / "s" / "state.db").exists()
    r = cli(cfg, "db", "upgrade")
    assert "schema up to date" in r.stdout


def test_an_unreachable_postgres_is_one_line_for_every_command(tmp_path):
    """The PostgreSQL counterpart of a damaged state file: no server at the URL."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = config(tmp_path, f"postgresql://leaksentry@127.0.0.1:{port}/leaksentry")
    for args in (["hits"], ["status"], ["db", "upgrade"], ["crawl", "pastes"],
                 ["db", "migrate-from-sqlite", str(cfg)]):
        r = cli(cfg, *args)
        assert r.returncode == 2, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, args
        assert f"127.0.0.1:{port}" in r.stderr or "SQLite" in r.stderr, (args, r.stderr)
