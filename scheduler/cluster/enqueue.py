"""The daemon's side: a due crawl becomes a Celery job instead of a local subprocess.

A source whose previous job is still queued or running is not enqueued again
(the in-flight marker, :mod:`.state`): the cluster keeps the one-run-at-a-time
rule ``max_instances = 1`` gives on one machine. A broker that cannot be reached
is recorded as the run's error (so source health and alerts see it), never a
traceback in a scheduler thread.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import redis
from kombu.exceptions import KombuError, OperationalError

from leaksentry.store.runs import record_run
from pipelines.model import RunSummary
from scheduler.cluster.app import TASK, Job, config_snapshot, make_app, queue_for
from scheduler.cluster.state import ClusterState, connect

if TYPE_CHECKING:
    from celery import Celery

    from leaksentry.config import Settings
    from leaksentry.config.cluster import ClusterConfig
    from leaksentry.store import Store
    from scheduler.metrics import DaemonMetrics
    from scheduler.snapshot import ConfigSnapshot

log = logging.getLogger("leaksentry.scheduler.cluster")

_apps: dict[str, Celery] = {}
_lock = threading.Lock()


def producer(cluster: ClusterConfig) -> Celery:
    """One Celery app per broker, shared by the scheduler's threads."""
    url = cluster.broker_url()
    with _lock:
        if url not in _apps:
            _apps[url] = make_app(cluster, "leaksentry-daemon")
        return _apps[url]


def send(cluster: ClusterConfig, job: Job) -> None:
    """Publish one job (and note its enqueue time for the queue's lag)."""
    client = connect(cluster)
    try:
        ClusterState(client, cluster.key_prefix).queued(job.queue, job.job_id,
                                                         job.enqueued_at)
    finally:
        client.close()
    producer(cluster).send_task(TASK, args=[job.to_message()], queue=job.queue,
                                task_id=job.job_id)


def enqueue_crawl(settings: Settings, source: str, store: Store,
                  metrics: DaemonMetrics | None = None,
                  snapshot: ConfigSnapshot | None = None) -> str | None:
    """Enqueue one crawl of ``source``; returns the job id, None when not enqueued.
    The job carries ``snapshot`` (the daemon's validated config, scheduler.snapshot):
    a worker crawls with exactly those bytes, checked by their SHA-256."""
    cluster = settings.cluster
    src = settings.crawler.effective(settings.source(source))
    text, sha = config_snapshot(settings, snapshot)
    job = Job(source=source, config=text, config_sha256=sha, queue=queue_for(src, cluster))
    started = datetime.now(UTC)
    client = connect(cluster)
    state = ClusterState(client, cluster.key_prefix)
    claimed = False
    try:
        if not state.claim(source, job.job_id, cluster.visibility_timeout):
            log.debug("crawl of %s not enqueued: its previous job is still queued or running",
                     source, extra={"source": source})
            if metrics is not None:
                metrics.skipped.labels(f"crawl:{source}", "still_running").inc()
            return None
        claimed = True
        send(cluster, job)
    except (redis.RedisError, OperationalError, KombuError, OSError) as exc:
        msg = (f"cannot enqueue the crawl: broker {cluster.public_broker()} unreachable"
               f" ({type(exc).__name__})")
        log.error("crawl of %s: %s", source, msg, extra={"source": source})
        if claimed:
            with contextlib.suppress(redis.RedisError):  # else it expires after the timeout
                state.release(source, job.job_id)
        _record_error(store, source, started, msg, src.unhealthy_after)
        if metrics is not None:
            metrics.record_crawl(source, "error", 0, 0)
        return None
    finally:
        client.close()
    log.info("crawl of %s enqueued on %s", source, job.queue,
             extra={"source": source, "queue": job.queue, "job": job.job_id})
    return job.job_id


def _record_error(store: Store, source: str, started: datetime, error: str,
                  unhealthy_after: int) -> None:
    run = RunSummary(source=source, started_at=started, finished_at=datetime.now(UTC),
                     outcome="error", error=error)
    with store.transaction() as tx:
        record_run(tx, run, unhealthy_after=unhealthy_after)
