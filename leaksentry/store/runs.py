"""Source runs and source health: written by the crawler, read by the daemon,
`leaksentry status` and the source-health alerts. (Runs the store could not take while
it was unreachable: :mod:`leaksentry.store.unrecorded`.)"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from leaksentry.config.sources import DEFAULT_UNHEALTHY_AFTER
from leaksentry.redaction import redact
from leaksentry.store.engine import Connection, Row
from pipelines.model import RunSummary

log = logging.getLogger("leaksentry.store.runs")

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
