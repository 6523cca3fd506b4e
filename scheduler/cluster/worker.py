"""`leaksentry worker`: run the cluster's crawl jobs on this host.

Celery's thread pool takes jobs (``--concurrency`` at once) from the named
queues; each job is a fresh ``leaksentry crawl`` process, started and watched
by the same code as the daemon's local crawls (:func:`scheduler.crawls.run_crawl`:
the source's timeout + ``timeout_margin``, SIGTERM to the crawl's process
group, SIGKILL after ``kill_after``, a run always recorded). The crawl runs with
the config the job carries (the leader's, checked against its SHA-256), written
to a private file for the crawl's lifetime.

A worker killed mid-crawl takes its crawls with it (they get SIGTERM when their
parent dies and record a "killed" run); its job was not acknowledged, so Redis
hands it to another worker after the visibility timeout. A worker that lacks
the key or fingerprint file a crawl needs gives the job back and stops
(exit 2) rather than recording crawls it cannot scan.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import crawler.settings as defaults
from leaksentry.config import Settings, load_config
from leaksentry.errors import ConfigError, LeakSentryError
from pipelines.model import RunSummary, utcnow
from scheduler.cluster.app import TASK, Job, make_app
from scheduler.cluster.runs import LISTING, report_part, reported
from scheduler.cluster.state import HEARTBEAT_EVERY, ClusterState, WorkerStatus, connect
from scheduler.crawls import CrawlResult, RunningCrawls, command_settings, run_crawl
from scheduler.health_http import MetricsServer
from scheduler.logging_setup import setup_logging
from scheduler.schedule import schedules

if TYPE_CHECKING:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    from leaksentry.config.sources import SourceConfig

log = logging.getLogger("leaksentry.worker")

#: a worker that cannot take jobs exits with this (systemd: RestartPreventExitStatus=2)
EXIT_REFUSED = 2


class WorkerError(LeakSentryError):
    """The worker cannot start (no [cluster] broker, missing key files, port taken)."""


def missing_scan_files(settings: Settings) -> str | None:
    """Why this host cannot scan what it crawls (None: it can). A crawl whose
    processor was replaced (``-s LEAKSENTRY_PROCESSOR=...`` in ``[daemon] crawl_command``,
    tests) does not scan."""
    processor = command_settings(settings.daemon.crawl_command).get("LEAKSENTRY_PROCESSOR")
    if processor and processor != defaults.LEAKSENTRY_PROCESSOR:
        return None
    m = settings.matching
    for what, path in (("key", m.key), ("fingerprints", m.fingerprints)):
        if path is None:
            return f"matching.{what} is not set"
        if not os.access(path, os.R_OK):
            return f"matching.{what}: {path} is missing or unreadable on this worker"
    return None


@dataclass
class Worker:
    settings: Settings  # this worker's own config: the broker, its health port
    queues: list[str]
    concurrency: int
    name: str
    health_port: int | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(
        prefix="leaksentry-worker-")))
    started_at: float = field(default_factory=time.time)
    refusing: str | None = None
    stopping: bool = False
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)  # job id -> what runs
    done: dict[str, int] = field(default_factory=dict)  # outcome -> jobs finished
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.workdir.chmod(0o700)
        self.running = RunningCrawls(self.workdir / "crawls")
        self.state = ClusterState(connect(self.settings.cluster), self.settings.cluster.key_prefix)
        self.server: Any = None

    # -- health ------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        with self._lock:
            running = [dict(j) for j in self.jobs.values()]
        return {"status": "stopping" if self.stopping else
                ("refusing" if self.refusing else "ok"),
                "name": self.name, "pid": os.getpid(), "queues": self.queues,
                "concurrency": self.concurrency,
                "uptime_seconds": round(time.time() - self.started_at, 3),
                "jobs_running": running, "refusing": self.refusing}

    def status(self) -> WorkerStatus:
        with self._lock:
            running = [dict(j) for j in self.jobs.values()]
        url = (f"http://{self.server.host}:{self.server.port}" if self.server else None)
        return WorkerStatus(name=self.name, host=socket.gethostname(), pid=os.getpid(),
                            queues=self.queues, concurrency=self.concurrency,
                            started_at=self.started_at, seen_at=time.time(), health_url=url,
                            refusing=self.refusing, running=running)

    def _beat(self, stop: threading.Event) -> None:
        import redis

        while not stop.is_set():
            try:
                self.state.heartbeat(self.status())
            except redis.RedisError as exc:  # Redis down: keep trying, Celery reconnects too
                log.debug("heartbeat failed: %s", exc)
            stop.wait(HEARTBEAT_EVERY)

    def start_health(self) -> None:
        from prometheus_client import CollectorRegistry
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        from prometheus_client.registry import Collector


        worker = self

        class _Jobs(Collector):
            def describe(self) -> list[GaugeMetricFamily]:
                return []

            def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
                c = CounterMetricFamily("leaksentry_worker_jobs", "Jobs this worker finished,"
                                        " by outcome", labels=["outcome"])
                for outcome, n in sorted(worker.done.items()):
                    c.add_metric([outcome], n)
                yield c
                yield GaugeMetricFamily("leaksentry_worker_jobs_running",
                                        "Jobs running on this worker now",
                                        value=len(worker.jobs))

        registry = CollectorRegistry(auto_describe=True)
        registry.register(_Jobs())
        c = self.settings.cluster
        port = c.worker_health_port if self.health_port is None else self.health_port
        try:
            self.server = MetricsServer(c.worker_health_host, port, registry,
                                        self.health).start()
        except OSError as exc:
            raise WorkerError(f"cannot listen on {c.worker_health_host}:{port}"
                              f" (cluster.worker_health_port, or --health-port 0):"
                              f" {exc.strerror or exc}") from None

    # -- jobs --------------------------------------------------------------------
    def run_job(self, message: dict[str, Any]) -> dict[str, Any]:
        from celery.exceptions import Reject

        job = Job.from_message(message)
        log.info("job %s of %s (%s%s) taken %.3f s after it was enqueued", job.job_id,
                 job.source, job.kind, f" part {job.part}" if job.part else "",
                 time.time() - job.enqueued_at,
                 extra={"source": job.source, "job": job.job_id,
                        "queued_seconds": round(time.time() - job.enqueued_at, 3)})
        with contextlib.suppress(Exception):
            self.state.started(job.queue, job.job_id)
        if self.refusing:
            raise Reject(self.refusing, requeue=True)
        try:
            job.check()
        except ValueError as exc:  # corrupted: acknowledged and dropped, loudly
            log.error("job %s for %s refused: %s", job.job_id, job.source, exc)
            return {"outcome": "refused"}
        path = self.workdir / f"{job.job_id}-{job.part or 0}.toml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(job.config.encode("utf-8"))
        try:
            return self._run(job, path)
        finally:
            path.unlink(missing_ok=True)

    def _run(self, job: Job, path: Path) -> dict[str, Any]:
        from celery.exceptions import Reject

        try:
            settings = load_config(path if job.config else None,
                                   sha256=job.config_sha256 if job.config else None)
        except ConfigError as exc:
            log.error("job %s for %s refused: its config is invalid here: %s", job.job_id,
                      job.source, str(exc).splitlines()[0])
            return {"outcome": "refused"}
        problem = missing_scan_files(settings)
        if problem:
            self.refuse(f"cannot scan what it crawls: {problem}")
            raise Reject(problem, requeue=True)
        sched = schedules(settings).get(job.source)
        if sched is None:
            log.info("job for %s dropped: no longer configured", job.source)
            self._release(job)
            return {"outcome": "dropped"}
        d = settings.daemon
        src = settings.crawler.effective(settings.source(job.source))
        fan_out = job.kind == "crawl" and _fans_out(src)
        extra = ["--cluster-job", job.job_id]
        if job.kind == "items":
            items = self.workdir / f"{job.job_id}-{job.part}.json"
            items.write_text(json.dumps({"run": job.run, "part": job.part,
                                         "items": job.items}))
            extra += ["--part", str(items)]
        elif fan_out:
            extra += ["--fan-out"]
        if job.kind == "items" and job.run:
            with contextlib.suppress(Exception):
                self.state.refresh(job.source, job.run, settings.cluster.visibility_timeout)
        key = f"{job.source}#{job.part}" if job.kind == "items" else job.source
        with self._lock:
            self.jobs[job.job_id] = {"source": job.source, "job_id": job.job_id,
                                     "kind": job.kind, "part": job.part,
                                     "started_at": time.time()}
        # an environment variable, not a setting: it is the handshake between this
        # process and the crawl process (the crawl stops when this worker dies)
        env = dict(os.environ, LEAKSENTRY_DIE_WITH_PARENT=str(os.getpid()))
        from leaksentry.store import Store

        store = Store(settings.state)
        try:
            # the crawl checks the file's hash too, as it does for the daemon's snapshot
            result = run_crawl(store, job.source, path if job.config else None,
                               config_sha256=job.config_sha256 if job.config else None,
                               timeout=sched.timeout + d.timeout_margin,
                               kill_after=d.kill_after, base_command=d.crawl_command,
                               running=self.running, env=env,
                               unhealthy_after=src.unhealthy_after,
                               extra_args=extra, key=key,
                               records=not (fan_out or job.kind == "items"))
        finally:
            store.close()
            with self._lock:
                self.jobs.pop(job.job_id, None)
            if job.kind == "items":
                (self.workdir / f"{job.job_id}-{job.part}.json").unlink(missing_ok=True)
        if fan_out or job.kind == "items":
            self._part_done(settings, job, result)
        else:
            self._release(job)
        self.done[result.outcome] = self.done.get(result.outcome, 0) + 1
        return {"outcome": result.outcome, "fetched": result.fetched, "hits": result.hits}

    def _part_done(self, settings: Settings, job: Job, result: CrawlResult) -> None:
        """A part whose process ended without reporting (crashed, timed out) is reported
        here as failed, so the run is still recorded once."""
        import redis


        run = job.run if job.kind == "items" else job.job_id
        part = job.part if job.kind == "items" else LISTING
        assert run is not None and part is not None
        try:
            if reported(settings, run, part):
                return
            now = utcnow()
            why = result.error or f"exit status {result.returncode}"
            summary = RunSummary(source=job.source, started_at=now, finished_at=now,
                                 outcome=result.outcome if result.outcome != "ok" else "error",
                                 errors=1, error=f"ended without reporting: {why}")
            report_part(settings, job.source, run, part, summary,
                        total="sent" if part == LISTING else None)
        except redis.RedisError as exc:
            log.error("part %s of the run of %s could not be reported: %s", part,
                      job.source, exc)

    def _release(self, job: Job) -> None:
        import redis

        with contextlib.suppress(redis.RedisError):  # else it expires after the timeout
            self.state.release(job.source, job.job_id)

    def refuse(self, why: str) -> None:
        """Give jobs back and stop: another worker runs them."""
        if self.refusing:
            return
        self.refusing = why
        log.error("worker %s refuses jobs: %s; stopping", self.name, why)
        threading.Thread(target=_terminate_soon, daemon=True).start()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.state.gone(self.name)
        if self.server is not None:
            self.server.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _fans_out(source: SourceConfig) -> bool:
    """Directory and bucket crawls list once and spread their items over the cluster."""
    return source.kind in ("directory", "bucket")


def _terminate_soon() -> None:
    """SIGTERM this process in half a second (from a thread: the worker stops as when
    asked to)."""
    time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)


def run_worker(config_path: Path | None, queues: list[str] | None, concurrency: int,
               name: str | None = None, health_port: int | None = None) -> int:
    """Start a worker and serve until stopped; returns the exit code."""

    settings = load_config(config_path)
    c = settings.cluster
    if not c.enabled:
        raise WorkerError(f"{settings.path or 'config'}: cluster.broker is not set: a worker"
                          " takes its jobs from the cluster's Redis")
    problem = missing_scan_files(settings)
    if problem:
        raise WorkerError(f"{settings.path or 'config'}: this worker cannot scan what it"
                          f" crawls: {problem}")
    if settings.state.url:  # a shared store behind this version: refuse at start
        from leaksentry.store import Store

        store = Store(settings.state)
        try:
            store.check_schema()
        finally:
            store.close()
    setup_logging(settings.daemon.log_format, settings.daemon.log_level)
    queues = queues or [c.http_queue, c.browser_queue]
    name = name or f"worker{os.getpid()}@{socket.gethostname()}"
    worker = Worker(settings, queues, concurrency, name, health_port)
    app = make_app(c, "leaksentry-worker")

    @app.task(name=TASK, bind=True, acks_late=True, reject_on_worker_lost=True)
    def crawl(task: Any, message: dict[str, Any]) -> dict[str, Any]:
        return worker.run_job(message)

    stop = threading.Event()
    try:
        worker.start_health()
        beat = threading.Thread(target=worker._beat, args=(stop,), name="heartbeat",
                                daemon=True)
        beat.start()
        log.info("worker %s started: queues %s, concurrency %d, broker %s%s", name,
                 ",".join(queues), concurrency, c.public_broker(),
                 f", health http://{worker.server.host}:{worker.server.port}/healthz"
                 if worker.server else "")
        w = app.Worker(hostname=name, queues=queues, concurrency=concurrency, pool="threads",
                       loglevel=settings.daemon.log_level, without_gossip=True,
                       without_mingle=True, without_heartbeat=True, quiet=True,
                       redirect_stdouts=False)
        w.start()
        code = w.exitcode or 0
    finally:
        worker.stopping = True
        stop.set()
        worker.close()
    return EXIT_REFUSED if worker.refusing else code
