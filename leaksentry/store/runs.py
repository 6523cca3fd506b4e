"""Source runs and source health: written by the crawler, read by the daemon,
`leaksentry status` and the source-health alerts.

A run that cannot be recorded because the store cannot be reached (a shared PostgreSQL
down) is not lost: :func:`record_or_defer` keeps it in a journal in the state directory
(``unrecorded-runs.jsonl``, 0600), and :func:`replay_deferred` records it once the store
answers again (the daemon and the workers call it before each crawl)."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from leaksentry.config.sources import DEFAULT_UNHEALTHY_AFTER
from leaksentry.redaction import redact
from leaksentry.store.engine import Connection, Row
from pipelines.model import RunSummary, summary_from_json, summary_to_json

if TYPE_CHECKING:
    from leaksentry.store.db import Store

log = logging.getLogger("leaksentry.store.runs")

#: runs that could not be recorded because the store could not be reached (a PostgreSQL
#: server down), kept in the recording host's state directory until it is back
DEFERRED_FILE = "unrecorded-runs.jsonl"

COMPONENT = "runs"
MIGRATIONS: list[str] = [
    """
    CREATE TABLE source_runs (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        outcome TEXT NOT NULL,
        discovered INTEGER NOT NULL DEFAULT 0,
        fetched INTEGER NOT NULL DEFAULT 0,
        new INTEGER NOT NULL DEFAULT 0,
        hits INTEGER NOT NULL DEFAULT 0,
        errors INTEGER NOT NULL DEFAULT 0,
        statuses TEXT NOT NULL DEFAULT '{}',
        duration REAL NOT NULL DEFAULT 0,
        error TEXT
    );
    CREATE INDEX source_runs_source ON source_runs(source, started_at);
    CREATE TABLE source_health (
        source TEXT PRIMARY KEY,
        healthy INTEGER NOT NULL DEFAULT 1,
        consecutive_errors INTEGER NOT NULL DEFAULT 0,
        consecutive_empty INTEGER NOT NULL DEFAULT 0,
        last_run TEXT,
        last_success TEXT,
        last_outcome TEXT,
        last_error TEXT,
        reason TEXT,
        changed_at TEXT
    );
    """,
]


@dataclass(frozen=True, slots=True)
class SourceHealth:
    source: str
    healthy: bool
    consecutive_errors: int
    consecutive_empty: int
    last_run: str | None
    last_success: str | None
    last_outcome: str | None
    last_error: str | None
    reason: str | None
    changed_at: str | None


def record_run(
    conn: Connection, run: RunSummary, *, unhealthy_after: int = DEFAULT_UNHEALTHY_AFTER
) -> SourceHealth:
    """Append a run and update the source's health.

    A source is unhealthy after ``unhealthy_after`` consecutive errored runs or
    runs that discovered nothing (sources die silently: REFERENCE.md). The run's error
    (a URL, a page title, a library's message) is stored through the redaction policy.
    """
    error = redact(run.error)
    conn.execute(
        "INSERT INTO source_runs(source, started_at, finished_at, outcome, discovered, fetched,"
        " new, hits, errors, statuses, duration, error) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (run.source, run.started_at.isoformat(), run.finished_at.isoformat(), run.outcome,
         run.discovered, run.fetched, run.new, run.hits, run.errors,
         json.dumps(run.statuses, sort_keys=True), run.duration, error),
    )
    prev = get_health(conn, run.source)
    errored = run.outcome != "ok"
    errs = (prev.consecutive_errors + 1 if prev else 1) if errored else 0
    empty = (prev.consecutive_empty + 1 if prev else 1) if (not errored and run.discovered == 0) \
        else 0
    reason = None
    if errs >= unhealthy_after:
        reason = f"{errs} consecutive failed runs (last: {error or run.outcome})"
    elif empty >= unhealthy_after:
        reason = f"discovered nothing in {empty} consecutive runs"
    healthy = reason is None
    changed = prev is None or prev.healthy != healthy
    finished = run.finished_at.isoformat()
    conn.execute(
        "INSERT INTO source_health(source, healthy, consecutive_errors, consecutive_empty,"
        " last_run, last_success, last_outcome, last_error, reason, changed_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT(source) DO UPDATE SET healthy=excluded.healthy,"
        " consecutive_errors=excluded.consecutive_errors,"
        " consecutive_empty=excluded.consecutive_empty, last_run=excluded.last_run,"
        " last_success=COALESCE(excluded.last_success, source_health.last_success),"
        " last_outcome=excluded.last_outcome, last_error=excluded.last_error,"
        " reason=excluded.reason,"
        " changed_at=CASE WHEN source_health.healthy != excluded.healthy"
        "   THEN excluded.changed_at ELSE source_health.changed_at END",
        (run.source, int(healthy), errs, empty, finished,
         finished if not errored else None, run.outcome, error, reason,
         finished if changed else (prev.changed_at if prev else finished)),
    )
    health = get_health(conn, run.source)
    assert health is not None
    return health


def _health(row: Row) -> SourceHealth:
    return SourceHealth(
        source=row["source"], healthy=bool(row["healthy"]),
        consecutive_errors=row["consecutive_errors"], consecutive_empty=row["consecutive_empty"],
        last_run=row["last_run"], last_success=row["last_success"],
        last_outcome=row["last_outcome"], last_error=row["last_error"], reason=row["reason"],
        changed_at=row["changed_at"],
    )


def get_health(conn: Connection, source: str) -> SourceHealth | None:
    row = conn.execute("SELECT * FROM source_health WHERE source = ?", (source,)).fetchone()
    return _health(row) if row else None


def all_health(conn: Connection) -> list[SourceHealth]:
    return [_health(r) for r in conn.execute("SELECT * FROM source_health ORDER BY source")]


def recent_runs(conn: Connection, source: str | None = None,
                limit: int = 20) -> list[Row]:
    if source:
        q = "SELECT * FROM source_runs WHERE source = ? ORDER BY id DESC LIMIT ?"
        return list(conn.execute(q, (source, limit)))
    return list(conn.execute("SELECT * FROM source_runs ORDER BY id DESC LIMIT ?", (limit,)))


# -- runs the store could not take ------------------------------------------------

def _journal(state_dir: Path) -> int:
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(state_dir / DEFERRED_FILE, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # appenders and the replay of other processes wait
    return fd


def defer_run(state_dir: Path, run: RunSummary, *, unhealthy_after: int,
              unless_recorded: bool = False) -> None:
    """Keep a run for :func:`replay_deferred`. ``unless_recorded``: the crawl may have
    recorded its own run before the store went away; the replay then drops this one."""
    run = dataclasses.replace(run, error=redact(run.error))
    line = json.dumps({"run": json.loads(summary_to_json(run)),
                       "unhealthy_after": unhealthy_after,
                       "unless_recorded": unless_recorded}) + "\n"
    fd = _journal(state_dir)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def deferred_count(state_dir: Path) -> int:
    try:
        with (state_dir / DEFERRED_FILE).open("rb") as f:
            return sum(1 for line in f if line.strip())
    except OSError:
        return 0


def replay_deferred(store: Store) -> int:
    """Record the runs kept while the store was unreachable (oldest first), in one
    transaction; the journal is emptied only once they are committed. Returns how many
    were recorded."""
    state_dir = store.state_dir
    if not (state_dir / DEFERRED_FILE).exists():
        return 0
    fd = _journal(state_dir)
    try:
        with os.fdopen(os.dup(fd), "r", encoding="utf-8") as f:
            f.seek(0)
            lines = [x for x in f.read().splitlines() if x.strip()]
        recorded = 0
        with store.transaction() as tx:
            for line in lines:
                try:
                    entry = json.loads(line)
                    run = summary_from_json(json.dumps(entry["run"]))
                except (ValueError, KeyError, TypeError):
                    log.warning("%s: an unreadable line was dropped", DEFERRED_FILE)
                    continue
                if entry.get("unless_recorded") and tx.execute(
                        "SELECT 1 FROM source_runs WHERE source = ? AND started_at >= ?",
                        (run.source, run.started_at.isoformat())).fetchone():
                    continue
                record_run(tx, run, unhealthy_after=int(entry.get("unhealthy_after")
                                                         or DEFAULT_UNHEALTHY_AFTER))
                recorded += 1
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)
    if recorded:
        log.info("recorded %d run(s) kept while the state store was unreachable", recorded)
    return recorded


def record_or_defer(store: Store, run: RunSummary, *, unhealthy_after: int,
                    unless_recorded: bool = False) -> bool:
    """Record a run; when the store cannot be reached, keep it for later (logged). True
    when it was recorded now."""
    from leaksentry.store.db import unreachable

    try:
        with store.transaction() as tx:
            record_run(tx, run, unhealthy_after=unhealthy_after)
        return True
    except Exception as exc:
        if not unreachable(exc):
            raise
        defer_run(store.state_dir, run, unhealthy_after=unhealthy_after,
                  unless_recorded=unless_recorded)
        log.error("run of %s kept in %s until the state store is back: %s", run.source,
                  store.state_dir / DEFERRED_FILE, " ".join(str(exc).split())[:300],
                  extra={"source": run.source})
        return False
