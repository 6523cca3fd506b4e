"""Runs the store could not take: a run that cannot be recorded because the store cannot
be reached (a shared PostgreSQL down) is not lost. :func:`record_or_defer` keeps it in a
journal in the state directory (``unrecorded-runs.jsonl``, 0600), and
:func:`replay_deferred` records it once the store answers again (the daemon and the
workers call it before each crawl)."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
from pathlib import Path

from leaksentry.config.sources import DEFAULT_UNHEALTHY_AFTER
from leaksentry.redaction import redact
from leaksentry.store.db import Store
from leaksentry.store.failures import store_failure, unreachable
from leaksentry.store.runs import record_run
from pipelines.model import RunSummary, summary_from_json, summary_to_json

log = logging.getLogger("leaksentry.store.unrecorded")

#: runs that could not be recorded because the store could not be reached (a PostgreSQL
#: server down), kept in the recording host's state directory until it is back
DEFERRED_FILE = "unrecorded-runs.jsonl"


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
                    unless_recorded: bool = False) -> int | None:
    """Record a run; when the store cannot be reached, keep it for later (logged). The
    recorded run's id, or None when it was kept."""
    try:
        with store.transaction() as tx:
            record_run(tx, run, unhealthy_after=unhealthy_after)
            return int(tx.execute("SELECT max(id) FROM source_runs WHERE source = ?",
                                  (run.source,)).fetchone()[0])
    except Exception as exc:
        if not unreachable(exc):
            raise
        defer_run(store.state_dir, run, unhealthy_after=unhealthy_after,
                  unless_recorded=unless_recorded)
        log.error("run of %s kept in %s until the state store is back: %s", run.source,
                  store.state_dir / DEFERRED_FILE, store_failure(store.where, exc),
                  extra={"source": run.source})
        return None
