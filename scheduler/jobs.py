"""The daemon's jobs: module-level callables with plain arguments.

APScheduler's SQLAlchemy job store pickles a reference to the function
(``scheduler.jobs:crawl_job``) and its arguments, so jobs carry only a source
name. What they act on (the store, the current settings and config snapshot
after a reload, the metrics) is the :class:`Runtime` the daemon installs.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from leaksentry.config.sources import DEFAULT_UNHEALTHY_AFTER
from leaksentry.errors import ConfigError
from pipelines.alerts.health import plan_health_alerts
from pipelines.alerts.worker import deliver_pending
from pipelines.sinks.client import connect
from pipelines.sinks.retention import purge
from pipelines.sinks.setup import drop_expired_indices
from pipelines.sinks.spool import drain
from pipelines.sinks.vault import Vault
from scheduler.crawls import CrawlResult, RunningCrawls, run_crawl
from scheduler.schedule import (
    HEALTH,
    OUTBOX,
    RETENTION,
    SPOOL,
    human_duration,
    schedules,
)

if TYPE_CHECKING:
    from leaksentry.config import Settings
    from leaksentry.store import Store
    from scheduler.metrics import DaemonMetrics
    from scheduler.snapshot import ConfigSnapshot
    from scheduler.waker import AlertWaker

log = logging.getLogger("leaksentry.scheduler.jobs")



@dataclass
class Runtime:
    """What the running daemon's jobs work with."""

    settings: Settings
    config_path: Path | None
    store: Store
    metrics: DaemonMetrics | None
    running: RunningCrawls
    #: the validated config every crawl runs (None outside the daemon: the file itself)
    snapshot: ConfigSnapshot | None = None
    #: wakes the alert delivery thread (None: the outbox interval only)
    waker: AlertWaker | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    #: one delivery pass at a time (the interval job and the waker's passes)
    outbox_lock: threading.Lock = field(default_factory=threading.Lock)

    def wake_alerts(self) -> None:
        if self.waker is not None:
            self.waker.wake()


_runtime: Runtime | None = None


def install(rt: Runtime | None) -> None:
    global _runtime
    _runtime = rt


def current() -> Runtime:
    if _runtime is None:
        raise RuntimeError("no daemon runtime installed (jobs run only inside `leaksentry run`)")
    return _runtime


# -- crawls --------------------------------------------------------------------

def crawl_job(source: str, config_path: str | None = None) -> CrawlResult | None:
    """Run one crawl of ``source`` in a subprocess (skipped while shutting down).

    ``config_path`` is ignored (job stores written by older versions pass it): a
    crawl always runs the daemon's current config snapshot."""
    try:
        return _crawl(source)
    except Exception as exc:  # the runner records what it can; never kill the worker
        log.error("crawl job of %s failed: %s", source, _one_line(exc),
                  extra={"source": source})
        return None


def _crawl(source: str) -> CrawlResult | None:
    rt = current()
    if rt.stopping.is_set():
        log.info("crawl of %s skipped: shutting down", source, extra={"source": source})
        return None
    sched = schedules(rt.settings).get(source)
    if sched is None:  # removed by a reload while this run was queued
        log.info("crawl of %s skipped: no longer configured", source, extra={"source": source})
        return None
    if rt.settings.cluster.enabled:  # a worker runs it
        # imported here: a daemon without a cluster does not load redis and kombu (120 ms)
        from scheduler.cluster.enqueue import enqueue_crawl

        enqueue_crawl(rt.settings, source, rt.store, rt.metrics, rt.snapshot)
        return None
    d = rt.settings.daemon
    snap = rt.snapshot
    result = run_crawl(
        rt.store, source, snap.path if snap else rt.config_path,
        config_sha256=snap.sha256 if snap else None,
        timeout=sched.timeout + d.timeout_margin,
        kill_after=d.kill_after, base_command=d.crawl_command, running=rt.running,
        unhealthy_after=_unhealthy_after(rt.settings, source),
        env=rt.waker.child_env() if rt.waker else None,
        pass_fds=rt.waker.child_fds if rt.waker else (),
    )
    if rt.metrics is not None:
        rt.metrics.record_crawl(source, result.outcome, result.fetched, result.hits)
    return result


def _unhealthy_after(settings: Settings, source: str) -> int:
    """The source's `unhealthy_after`, else [crawler]'s: the same rule the crawl applies."""
    try:
        value = getattr(settings.source(source), "unhealthy_after", None)
    except ConfigError:
        value = None
    if value is None:
        value = getattr(settings.crawler, "unhealthy_after", None)
    return int(value or DEFAULT_UNHEALTHY_AFTER)


# -- periodic jobs ---------------------------------------------------------------

def deliver_outbox_job() -> None:
    """Deliver due alerts from the outbox (retries and dead letters are the worker's)."""
    rt = current()
    with rt.outbox_lock:
        report = deliver_pending(rt.store, rt.settings)
    if rt.metrics is not None:
        rt.metrics.record_delivery(report)


def drain_spool_job() -> None:
    """Send spooled documents to Elasticsearch (only when it is configured)."""
    rt = current()
    if not rt.settings.elasticsearch.enabled:
        return
    report = drain(rt.store, rt.settings)
    if rt.metrics is not None:
        rt.metrics.record_drain(report)


def health_job() -> None:
    """Raise source-health alerts (and recovery notices) from recorded runs."""
    rt = current()
    n = plan_health_alerts(rt.store, rt.settings)
    if n:
        rt.wake_alerts()
        log.info("planned %d source-health alert(s)", n, extra={"job": HEALTH})


def retention_job() -> None:
    """Purge local hits, documents and spooled data older than ``[daemon] retention``;
    evidence older than ``[evidence] retention`` (and unfinished evidence files); with
    Elasticsearch, drop monthly indices past ``[elasticsearch] retention`` (the
    fallback where the cluster runs neither ILM nor ISM; harmless where it does)."""
    rt = current()
    age = rt.settings.daemon.retention
    if age > 0:
        n = purge(rt.store, older_than_seconds=age)
        if rt.metrics is not None and n:
            rt.metrics.purged.inc(n)
        if n:
            log.info("retention: purged %d local row(s) older than %s", n, human_duration(age),
                     extra={"job": RETENTION, "purged": n})
    if rt.settings.evidence.enabled:
        vault = Vault.from_settings(rt.settings)
        assert vault is not None
        with rt.store.transaction() as tx:
            purged = vault.purge(tx)
        swept = vault.sweep(rt.store.conn)
        if purged or swept.temp_files or swept.orphans:
            log.info("retention: deleted %d evidence file(s) older than %s; removed %d"
                     " unfinished and %d orphaned evidence file(s)", len(purged),
                     human_duration(vault.retention), swept.temp_files, swept.orphans,
                     extra={"job": RETENTION})
    if rt.settings.elasticsearch.enabled:
        cluster = connect(rt.settings.elasticsearch)
        try:
            dropped = drop_expired_indices(cluster)
        finally:
            cluster.close()
        if dropped:
            log.info("retention: dropped %d expired index(es): %s", len(dropped),
                     ", ".join(dropped), extra={"job": RETENTION})


PERIODIC = {
    OUTBOX: deliver_outbox_job,
    SPOOL: drain_spool_job,
    HEALTH: health_job,
    RETENTION: retention_job,
}


def periodic_job(job_id: str) -> None:
    """The scheduled entry point of every periodic job: a failure is one log line
    and a metric, never a traceback, and the job runs again at its next time."""
    try:
        PERIODIC[job_id]()
    except Exception as exc:
        log.error("%s job failed: %s", job_id, _one_line(exc), extra={"job": job_id})
        rt = _runtime
        if rt is not None and rt.metrics is not None:
            rt.metrics.job_errors.labels(job_id).inc()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
