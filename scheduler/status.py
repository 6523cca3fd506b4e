"""What `leaksentry status` shows, read from the files alone (daemon running or not).

Last runs and health come from the state store; next runs from the job store
(``apscheduler_jobs.next_run_time`` is a plain column, so no job is unpickled
and nothing is written); whether a daemon is running from STATE_DIR/daemon.json.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from contextlib import closing
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from leaksentry.config import Settings
from leaksentry.processes import alive
from leaksentry.redaction import redact
from leaksentry.store import Store
from leaksentry.store.engine import Connection, db_errors
from leaksentry.store.failures import missing_table, store_failure
from leaksentry.store.outbox import outbox_counts
from pipelines.sinks.spool import spool_depth, spool_rejected
from scheduler.readonly import connect_readonly
from scheduler.schedule import CRAWL_PREFIX, source_schedule
from scheduler.statefiles import info_path, jobstore_path


@dataclass
class SourceStatus:
    name: str
    kind: str
    schedule: str
    configured: bool = True
    last_run: str | None = None
    last_outcome: str | None = None
    last_success: str | None = None
    next_run: str | None = None
    healthy: bool | None = None  # None: never run
    reason: str | None = None
    runs: int = 0


@dataclass
class Status:
    state_dir: str
    daemon_pid: int | None
    metrics_url: str | None
    sources: list[SourceStatus] = field(default_factory=list)
    outbox: dict[str, int] = field(default_factory=dict)
    spool_depth: int | None = None
    spool_rejected: int | None = None
    jobs: dict[str, str | None] = field(default_factory=dict)  # periodic job -> next run
    cluster: dict[str, Any] | None = None  # [cluster]: workers, queues (scheduler.cluster.state)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def daemon_info(settings: Settings) -> dict[str, Any] | None:
    """daemon.json when its process is still alive, else None."""
    try:
        info: dict[str, Any] = json.loads(info_path(settings).read_text())
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not alive(pid):
        return None
    with contextlib.suppress(OSError):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"leaksentry" not in cmdline and b"scheduler" not in cmdline:
            return None  # pid reused by something else
    return info


def next_runs(settings: Settings) -> dict[str, str | None]:
    """job id -> next run time (ISO, UTC) from the job store; {} when there is none."""
    path = jobstore_path(settings)
    if not path.exists():
        return {}
    try:
        conn = connect_readonly(path)
    except sqlite3.Error:
        return {}
    with closing(conn):
        try:
            rows = conn.execute("SELECT id, next_run_time FROM apscheduler_jobs").fetchall()
        except sqlite3.Error:
            return {}
    return {job_id: (datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
                     if ts is not None else None) for job_id, ts in rows}


def collect_status(settings: Settings) -> Status:
    info = daemon_info(settings)
    status = Status(state_dir=str(settings.state.dir),
                    daemon_pid=info["pid"] if info else None,
                    metrics_url=info.get("metrics_url") if info else None)
    nexts = next_runs(settings)
    status.jobs = {k: v for k, v in nexts.items() if not k.startswith(CRAWL_PREFIX)}
    by_name: dict[str, SourceStatus] = {}
    for i, src in enumerate(settings.sources):
        try:
            sched = source_schedule(src, settings, i).describe()
            sched = sched.split(" ", 2)[2].removesuffix(" jitter 0s")  # drop "crawl NAME"
        except Exception as exc:  # status must still print with a bad schedule
            sched = f"invalid: {exc}"
        by_name[src.name] = SourceStatus(name=src.name, kind=src.kind, schedule=sched,
                                         next_run=nexts.get(CRAWL_PREFIX + src.name))
    if settings.state.url or settings.state.db.exists():
        store = Store(settings.state, readonly=True)
        try:  # a damaged state file is an error, not an empty status
            conn = store.conn
            conn.tables()
            _fill_runs(conn, by_name)
            status.outbox = _outbox(conn)
            status.spool_depth, status.spool_rejected = _spool(conn)
        except db_errors() as exc:
            raise store_failure(store.where, exc) from None
        finally:
            store.close()
    status.sources = list(by_name.values())
    if settings.cluster.enabled:  # deferred: redis loads only with a cluster
        from scheduler.cluster.state import cluster_status

        status.cluster = cluster_status(settings.cluster).to_dict()
    return status


def _fill_runs(conn: Connection, by_name: dict[str, SourceStatus]) -> None:
    try:
        health = conn.execute("SELECT * FROM source_health ORDER BY source").fetchall()
        counts = {r[0]: r[1] for r in conn.execute(
            "SELECT source, count(*) FROM source_runs GROUP BY source").fetchall()}
    except db_errors() as exc:
        if not missing_table(exc):
            raise
        return
    for row in health:
        st = by_name.get(row["source"])
        if st is None:
            st = by_name[row["source"]] = SourceStatus(
                name=row["source"], kind="-", schedule="not configured", configured=False)
        st.last_run = row["last_run"]
        st.last_outcome = row["last_outcome"]
        st.last_success = row["last_success"]
        st.healthy = bool(row["healthy"])
        st.reason = redact(row["reason"])  # rows written before the policy too
        st.runs = counts.get(row["source"], 0)


def _outbox(conn: Connection) -> dict[str, int]:
    try:
        return dict(outbox_counts(conn))
    except db_errors() as exc:  # a state file from before the outbox existed
        if not missing_table(exc):
            raise
        return {}


def _spool(conn: Connection) -> tuple[int | None, int | None]:
    try:
        return int(spool_depth(conn)), int(spool_rejected(conn))
    except db_errors() as exc:  # a state file from before the spool existed
        if not missing_table(exc):
            raise
        return None, None
