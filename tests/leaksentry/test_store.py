"""The state store: WAL, per-component migrations, transactions; and the same store on a
real PostgreSQL (``store_url``)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from leaksentry.errors import StoreError
from leaksentry.store import Store

V1 = ["CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT);"]
V2 = [*V1, "ALTER TABLE things ADD COLUMN colour TEXT; CREATE INDEX things_name ON things(name);"]


def test_real_store_opens_in_wal_with_every_component(tmp_path):
    store = Store(tmp_path / "state.db")
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    versions = store.schema_versions()
    assert "runs" in versions and versions["runs"] >= 1
    # reopening runs no migration twice
    again = Store(tmp_path / "state.db")
    assert again.schema_versions() == versions


def test_migrations_apply_in_order_and_only_once(tmp_path):
    path = tmp_path / "s.db"
    Store(path, migrations=[("demo", V1)])
    s = Store(path, migrations=[("demo", V2)])
    assert s.schema_versions() == {"demo": 2}
    s.conn.execute("INSERT INTO things(name, colour) VALUES ('a', 'red')")
    s = Store(path, migrations=[("demo", V2)])
    assert s.conn.execute("SELECT count(*) FROM things").fetchone()[0] == 1


def test_newer_schema_than_code_is_refused(tmp_path):
    path = tmp_path / "s.db"
    Store(path, migrations=[("demo", V2)])
    with pytest.raises(StoreError, match="newer than this leaksentry knows"):
        Store(path, migrations=[("demo", V1)])


def test_failed_migration_leaves_store_unchanged(tmp_path):
    path = tmp_path / "s.db"
    Store(path, migrations=[("demo", V1)])
    with pytest.raises(StoreError, match="cannot migrate"):
        Store(path, migrations=[("demo", [*V1, "ALTER TABLE nope ADD COLUMN x;"])])
    assert Store(path, migrations=[("demo", V1)]).schema_versions() == {"demo": 1}


def test_transaction_rolls_back_on_error(tmp_path):
    s = Store(tmp_path / "s.db", migrations=[("demo", V1)])
    with pytest.raises(RuntimeError), s.transaction() as tx:
        tx.execute("INSERT INTO things(name) VALUES ('x')")
        raise RuntimeError("boom")
    assert s.conn.execute("SELECT count(*) FROM things").fetchone()[0] == 0
    with s.transaction() as tx:
        tx.execute("INSERT INTO things(name) VALUES ('y')")
        with s.transaction() as inner:  # nested joins the outer one
            inner.execute("INSERT INTO things(name) VALUES ('z')")
    assert s.conn.execute("SELECT count(*) FROM things").fetchone()[0] == 2


def test_connections_are_per_thread(tmp_path):
    s = Store(tmp_path / "s.db", migrations=[("demo", V1)])
    seen: list[sqlite3.Connection] = []

    def work(n: int) -> None:
        seen.append(s.conn)
        for _ in range(50):
            with s.transaction() as tx:
                tx.execute("INSERT INTO things(name) VALUES (?)", (str(n),))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in seen}) == 4
    assert s.conn.execute("SELECT count(*) FROM things").fetchone()[0] == 200


def test_unopenable_path_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create state directory"):
        Store(blocker / "sub" / "state.db")


def test_not_a_database(tmp_path):
    p = tmp_path / "junk.db"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=str(p)):
        Store(p)


def test_opening_a_new_state_file_waits_for_another_writer(tmp_path) -> None:
    """The shards of one crawl (crawler/shard.py) open a new state file together. While
    one of them holds the write lock on a file not yet in WAL mode, switching to WAL
    fails with "database is locked" at once: SQLite skips its busy handler where
    waiting could deadlock. Opening must wait for the writer instead (CI saw a shard
    fail this way)."""
    path = tmp_path / "state.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE held (x)")
    release = threading.Timer(0.5, lambda: other.execute("COMMIT"))
    release.start()
    try:
        store = Store(path)  # waits ~0.5 s for the other writer, then migrates
    finally:
        release.join()
        other.close()
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.schema_versions()


def test_a_transaction_waits_for_another_writer_and_keeps_the_busy_timeout(tmp_path) -> None:
    """``transaction()`` polls for the write lock in sub-millisecond steps (SQLite's own
    busy handler sleeps 1, 2, 5, 10 ... ms, which cost two crawl shards ~20 % of their
    throughput); it still waits for a writer that holds the lock, and leaves the
    connection's busy timeout as it was for statements outside transactions."""
    store = Store(tmp_path / "state.db")
    store.conn.execute("CREATE TABLE t (x INTEGER)")
    other = sqlite3.connect(tmp_path / "state.db", isolation_level=None,
                            check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    try:
        with store.transaction() as tx:  # waits for the other writer's commit
            tx.execute("INSERT INTO t VALUES (2)")
    finally:
        release.join()
        other.close()
    assert [r[0] for r in store.conn.execute("SELECT x FROM t ORDER BY x")] == [1, 2]
    assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30000


def test_seen_key_made_once_when_processes_race(tmp_path) -> None:
    """The shards of one crawl open a new state dir at the same moment: every process
    must end up with the same complete key (a half-written seen.key once failed a shard)."""
    import multiprocessing

    from leaksentry.store.seen import KEY_FILE, _secret

    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(8) as pool:
        for n in range(12):  # a fresh state dir each round: the race is at creation
            d = tmp_path / f"state{n}"
            d.mkdir()
            keys = pool.map(_secret, [d] * 16, chunksize=1)
            assert len(set(keys)) == 1 and len(keys[0]) == 32
            assert (d / KEY_FILE).read_bytes() == keys[0]
            assert (d / KEY_FILE).stat().st_mode & 0o777 == 0o600
            assert sorted(p.name for p in d.iterdir()) == [KEY_FILE]


# -- both engines: the same store on SQLite and on PostgreSQL (``store_url``) ----------

def _open(target, migrations=None):
    """Open as the engine's own upgrade path does: SQLite migrates on open, PostgreSQL
    only through ``leaksentry db upgrade`` (``upgrade=True``)."""
    return Store(target, migrations, upgrade=not isinstance(target, Path))


def test_every_component_on_both_engines(store_url):
    store = Store(store_url)
    versions = store.schema_versions()
    assert {"hits", "seen", "spool", "outbox", "runs", "evidence"} <= set(versions)
    assert {"documents", "hits", "seen_items", "es_spool", "alerts", "deliveries",
            "source_runs", "evidence"} <= store.tables()
    assert Store(store_url).schema_versions() == versions  # reopening migrates nothing
    store.close()


def test_migrations_in_order_once_and_rolled_back_on_failure(store_url):
    _open(store_url, [("demo", V1)])
    s = _open(store_url, [("demo", V2)])
    assert s.schema_versions()["demo"] == 2
    s.conn.execute("INSERT INTO things(name, colour) VALUES ('a', 'red')")
    s = _open(store_url, [("demo", V2)])
    assert s.conn.execute("SELECT count(*) FROM things").fetchone()[0] == 1
    with pytest.raises(StoreError, match="cannot migrate"):
        _open(store_url, [("demo", [*V2, "ALTER TABLE nope ADD COLUMN x;"])])
    assert _open(store_url, [("demo", V2)]).schema_versions()["demo"] == 2
    with pytest.raises(StoreError, match="newer than this leaksentry knows"):
        _open(store_url, [("demo", V1)])


def test_postgres_schema_behind_is_refused_until_db_upgrade(postgres_url):
    """Hosts of a cluster may run two versions for a while: only `leaksentry db upgrade`
    migrates a shared store, and a process finding it behind says so in one line."""
    with pytest.raises(StoreError, match=r"behind .*run `leaksentry db upgrade`") as e:
        Store(postgres_url).check_schema()
    assert "\n" not in str(e.value) and "pg-test-password" not in str(e.value)
    Store(postgres_url, [("demo", V1)], upgrade=True)
    with pytest.raises(StoreError, match=r"demo 1<2"):
        Store(postgres_url, [("demo", V2)]).conn.execute("SELECT 1")  # checked on connecting
    assert Store(postgres_url, [("demo", V2)], upgrade=True).upgrade() == {}
    Store(postgres_url, [("demo", V2)]).check_schema()  # up to date


def test_rows_transactions_and_placeholders_on_both_engines(store_url):
    s = _open(store_url, [("demo", V2)])
    with pytest.raises(RuntimeError), s.transaction() as tx:
        tx.execute("INSERT INTO things(name) VALUES ('x')")
        raise RuntimeError("boom")
    assert s.conn.execute("SELECT count(*) FROM things").fetchone()[0] == 0
    with s.transaction() as tx:
        new_id = tx.execute("INSERT INTO things(name, colour) VALUES (?, '50% ?')"
                            " RETURNING id", ("y",)).fetchone()[0]
        with s.transaction() as inner:  # nested joins the outer one
            inner.execute("INSERT INTO things(name) VALUES (?) ON CONFLICT DO NOTHING",
                          ("z",))
    row = s.conn.execute("SELECT id, name, colour FROM things WHERE id = ?",
                         (new_id,)).fetchone()
    assert row["name"] == row[1] == "y" and row["colour"] == "50% ?"
    assert dict(row) == {"id": new_id, "name": "y", "colour": "50% ?"}
    assert s.conn.execute("SELECT count(*) FROM things WHERE colour LIKE '50%'"
                          ).fetchone()[0] == 1
    n = s.conn.execute("UPDATE things SET colour = ? WHERE name IN (?, ?)",
                       ("blue", "y", "z")).rowcount
    assert n == 2


def test_one_writer_at_a_time_on_both_engines(store_url):
    """Read-modify-write inside ``transaction()`` never loses an update: SQLite's
    BEGIN IMMEDIATE, PostgreSQL's advisory write lock (the components rely on it)."""
    s = _open(store_url, [("demo", V1)])
    s.conn.execute("INSERT INTO things(id, name) VALUES (1, '0')")
    seen: list[object] = []

    def work() -> None:
        seen.append(s.conn)
        for _ in range(40):
            with s.transaction() as tx:
                n = int(tx.execute("SELECT name FROM things WHERE id = 1").fetchone()[0])
                tx.execute("UPDATE things SET name = ? WHERE id = 1", (str(n + 1),))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in seen}) == 4  # a connection per thread
    assert s.conn.execute("SELECT name FROM things WHERE id = 1").fetchone()[0] == "160"


def test_a_dropped_postgres_connection_is_replaced(postgres_url):
    s = Store(postgres_url, [("demo", V1)], upgrade=True)
    pid = s.conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    other = Store(postgres_url, [("demo", V1)])
    other.conn.execute("SELECT pg_terminate_backend(?)", (pid,))
    with pytest.raises(Exception) as e:
        s.conn.execute("SELECT 1")
    from leaksentry.store.failures import storage_error

    assert storage_error(e.value)
    assert s.conn.execute("SELECT 1").fetchone()[0] == 1  # a new connection


def test_state_url_never_holds_a_password():
    from leaksentry.config import Settings

    with pytest.raises(Exception, match="password_env"):
        Settings.model_validate({"state": {"url": "postgresql://u:secret@db.example/x"}})
    with pytest.raises(Exception, match="postgresql://"):
        Settings.model_validate({"state": {"url": "mysql://u@db.example/x"}})
