"""`leaksentry run`: the long-running daemon.

One BackgroundScheduler (APScheduler 3.11) with a persistent SQLAlchemy job
store in STATE_DIR/scheduler.db, guarded by an exclusive lock file because a
job store must never be shared between schedulers. The main thread only
waits for signals:

- SIGHUP: reload the config; an invalid one is one log line and the old one
  keeps running. Crawls run a frozen snapshot of the config the daemon
  validated (:mod:`scheduler.snapshot`), so neither a rejected reload nor an
  edit saved without SIGHUP changes what runs;
- SIGTERM/SIGINT: no new crawls, running crawls get ``grace_period``, then
  are stopped; the outbox and spool are flushed once more; exit 0. A second
  signal stops the crawls and exits at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import queue
import shutil
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import URL, create_engine
from sqlalchemy.exc import SQLAlchemyError

from leaksentry.config import Settings, read_config
from leaksentry.errors import ConfigError, LeakSentryError
from leaksentry.store import Store, outbox
from scheduler import jobs
from scheduler.crawls import RunningCrawls
from scheduler.health_http import MetricsServer
from scheduler.logging_setup import setup_logging
from scheduler.metrics import DaemonMetrics
from scheduler.reload import (
    CRAWL_EXECUTOR,
    MAINTENANCE_EXECUTOR,
    JobSpec,
    desired_jobs,
    sync_jobs,
)
from scheduler.schedule import OUTBOX, SPOOL
from scheduler.snapshot import ConfigSnapshot, write_snapshot
from scheduler.statefiles import info_path, jobstore_path
from scheduler.waker import AlertWaker

log = logging.getLogger("leaksentry.scheduler.daemon")

LOCK_FILE = "daemon.lock"
CRAWLS_DIR = "crawls"


class DaemonError(LeakSentryError):
    """The daemon cannot start (another daemon holds the state dir, a port is taken...)."""


def validate(settings: Settings) -> list[JobSpec]:
    """What the daemon checks beyond the config models: every schedule, and that the
    crawl command exists. Returns the jobs; raises ConfigError (one line)."""
    specs = desired_jobs(settings)
    cmd = settings.daemon.crawl_command
    if cmd and shutil.which(cmd[0]) is None:
        raise ConfigError(f"{settings.path or 'config'}: daemon.crawl_command: program"
                          f" {cmd[0]!r} not found")
    return specs


class Daemon:
    def __init__(self, settings: Settings, config_path: Path | None,
                 raw: bytes | None = None) -> None:
        """``raw``: the bytes ``settings`` were validated from (read again from
        ``config_path`` when not given)."""
        self.settings = settings
        self.config_path = config_path.resolve() if config_path is not None else None
        self._raw = raw
        self.snapshot: ConfigSnapshot | None = None
        self.waker: AlertWaker | None = None
        self.state_dir = settings.state.dir
        # SimpleQueue.put is reentrant: safe to call from a signal handler
        self._signals: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._stop_requested = False
        self._lock_fd: int | None = None
        self.scheduler: BackgroundScheduler | None = None
        self.server: MetricsServer | None = None
        self.runtime: jobs.Runtime | None = None
        self.started_at = time.time()

    # -- start -------------------------------------------------------------------
    def start(self) -> None:
        s = self.settings
        if self._raw is None:
            s, self._raw = read_config(self.config_path)
            self.settings = s
        validate(s)  # before touching any state
        self._take_lock()
        try:
            self.snapshot = write_snapshot(self.state_dir, self._raw)
        except OSError as exc:
            raise DaemonError(f"{self.state_dir}: cannot write the config snapshot:"
                              f" {exc.strerror or exc}") from None
        store = Store(s.state)
        # deliveries leased by a daemon killed mid-send: this daemon holds the exclusive
        # lock, so no other worker can own them; send them now, not when the lease ends
        with store.transaction() as tx:
            released = outbox.release_leases(tx, datetime.now(UTC))
        if released:
            log.info("released %d alert delivery lease(s) left by the previous daemon",
                     released)
        running = RunningCrawls(self.state_dir / CRAWLS_DIR)
        reaped = running.reap_orphans(store, kill_after=s.daemon.kill_after)
        if reaped:
            log.warning("recorded %d crawl(s) interrupted by the previous daemon: %s",
                        len(reaped), ", ".join(reaped))
        metrics = DaemonMetrics(s.state, running.names) if s.daemon.metrics else None
        if metrics is not None and s.cluster.enabled:  # queue depth, lag, workers
            from scheduler.cluster.metrics import register

            register(metrics.registry, s.cluster)
        self.waker = AlertWaker(lambda: jobs.periodic_job(OUTBOX))
        self.runtime = jobs.Runtime(settings=s, config_path=self.config_path, store=store,
                                    metrics=metrics, running=running, snapshot=self.snapshot,
                                    waker=self.waker)
        jobs.install(self.runtime)
        if metrics is not None:
            try:
                self.server = MetricsServer(s.daemon.metrics_host, s.daemon.metrics_port,
                                            metrics.registry, self.health).start()
            except OSError as exc:
                raise DaemonError(
                    f"cannot listen on {s.daemon.metrics_host}:{s.daemon.metrics_port}"
                    f" ([daemon] metrics_port): {exc.strerror or exc}") from None
        self.scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=create_engine(
                URL.create("sqlite", database=str(jobstore_path(s)))))},
            executors={
                CRAWL_EXECUTOR: ThreadPoolExecutor(s.daemon.max_concurrent_crawls),
                MAINTENANCE_EXECUTOR: ThreadPoolExecutor(2),
            },
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": max(1, int(s.daemon.misfire_grace_time))},
            timezone=UTC,
        )
        self.scheduler.add_listener(self._on_event, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        try:
            self.scheduler.start(paused=True)
            report = sync_jobs(self.scheduler, desired_jobs(s))
        except SQLAlchemyError as exc:
            raise DaemonError(
                f"{jobstore_path(s)}: cannot use the job store ({type(exc).__name__}:"
                f" {str(exc).splitlines()[0][:200]}); it holds only the schedule:"
                " move it away and start again to rebuild it") from None
        self.scheduler.resume()
        self.waker.start()  # delivers what a previous daemon left pending, then waits
        self._write_info()
        log.info("daemon started: %d source(s), %s; metrics %s", len(s.sources),
                 report.describe(),
                 f"http://{self.server.host}:{self.server.port}/metrics" if self.server
                 else "off", extra={"pid": os.getpid()})

    def _take_lock(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.state_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DaemonError(f"{path}: another leaksentry daemon is running on this state"
                              " directory (a job store must never be shared)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _write_info(self) -> None:
        info = {
            "pid": os.getpid(),
            "started_at": datetime.fromtimestamp(self.started_at, UTC).isoformat(),
            "config": str(self.config_path) if self.config_path else None,
            "metrics_url": (f"http://{self.server.host}:{self.server.port}"
                            if self.server else None),
        }
        path = info_path(self.settings)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=1) + "\n")
        os.replace(tmp, path)

    def _on_event(self, event: JobEvent) -> None:
        """A run skipped because the previous one is still going (max_instances=1), or
        missed by more than misfire_grace_time (the daemon was down or overloaded)."""
        reason = "still_running" if event.code == EVENT_JOB_MAX_INSTANCES else "missed"
        if self.runtime is not None and self.runtime.metrics is not None:
            self.runtime.metrics.skipped.labels(event.job_id, reason).inc()
        if reason == "missed":
            log.warning("run of %s due at %s was missed by more than misfire_grace_time;"
                        " it runs at its next time", event.job_id,
                        event.scheduled_run_time.isoformat(timespec="seconds"),
                        extra={"job": event.job_id})
        else:
            log.debug("run of %s skipped: the previous one is still running", event.job_id,
                      extra={"job": event.job_id})

    # -- health ------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        rt = self.runtime
        stopping = rt is None or rt.stopping.is_set()
        running = bool(self.scheduler and self.scheduler.running)
        return {
            "status": "stopping" if stopping else ("ok" if running else "down"),
            "pid": os.getpid(),
            "uptime_seconds": round(time.time() - self.started_at, 3),
            "sources": len(self.settings.sources),
            "crawls_running": rt.running.names() if rt else [],
        }

    # -- main loop ---------------------------------------------------------------
    def serve(self) -> int:
        """Wait for signals until asked to stop; returns the exit code."""
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        while True:
            try:
                sig = self._signals.get(timeout=0.5)
            except queue.Empty:
                continue
            if sig == signal.SIGHUP:
                self.reload()
            else:
                self.shutdown(signal.Signals(sig).name)
                return 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum != signal.SIGHUP and self._stop_requested:
            # second stop signal: stop crawls and leave now
            if self.runtime is not None:
                self.runtime.running.kill_all_now()
            os.write(2, b"leaksentry: second signal, exiting at once\n")
            os._exit(128 + signum)
        if signum != signal.SIGHUP:
            self._stop_requested = True
        self._signals.put(signum)

    def reload(self) -> None:
        assert self.scheduler is not None and self.runtime is not None
        try:
            new, raw = read_config(self.config_path)
            if new.state.dir.resolve() != self.settings.state.dir.resolve():
                raise ConfigError(f"{self.config_path}: state.dir changed; restart the daemon"
                                  " to move its state")
            specs = validate(new)
            try:
                snapshot = write_snapshot(self.state_dir, raw, keep=self.snapshot)
            except OSError as exc:
                raise ConfigError(f"{self.state_dir}: cannot write the config snapshot:"
                                  f" {exc.strerror or exc}") from None
        except LeakSentryError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.error("config reload failed, still running the previous config: %s", first,
                      extra={"event": "reload", "result": "invalid"})
            if self.runtime.metrics:
                self.runtime.metrics.reloads.labels("invalid").inc()
            return
        restart_needed = [k for k in ("metrics", "metrics_host", "metrics_port", "log_format",
                                      "max_concurrent_crawls")
                          if getattr(new.daemon, k) != getattr(self.settings.daemon, k)]
        self.settings = new
        self.snapshot = snapshot
        self.runtime.settings = new
        self.runtime.snapshot = snapshot
        report = sync_jobs(self.scheduler, specs)
        if new.daemon.log_level != logging.getLevelName(logging.getLogger().level):
            logging.getLogger().setLevel(new.daemon.log_level)
        log.info("config reloaded: %s%s", report.describe(),
                 f" (restart to apply: {', '.join(restart_needed)})" if restart_needed else "",
                 extra={"event": "reload", "result": "ok"})
        if self.runtime.metrics:
            self.runtime.metrics.reloads.labels("ok").inc()

    def shutdown(self, why: str = "shutdown") -> None:
        rt = self.runtime
        assert rt is not None and self.scheduler is not None
        d = self.settings.daemon
        log.info("%s: stopping; no new crawls, %d running get %gs", why,
                 len(rt.running.names()), d.grace_period, extra={"event": "shutdown"})
        rt.stopping.set()
        self.scheduler.pause()
        deadline = time.monotonic() + d.grace_period
        while rt.running.names() and time.monotonic() < deadline:
            time.sleep(0.1)
        left = rt.running.names()
        if left:
            log.warning("stopping %d crawl(s) still running after the grace period: %s",
                        len(left), ", ".join(left), extra={"event": "shutdown"})
            rt.running.stop_all(d.kill_after)
        # a run being submitted at this very moment fails against the stopped executor;
        # it stays due in the job store and runs after the restart: not an error
        logging.getLogger("apscheduler.scheduler").addFilter(_submit_race_filter)
        self.scheduler.shutdown(wait=True)
        if self.waker is not None:
            self.waker.stop()
            self.waker = None
        for job_id in (OUTBOX, SPOOL):
            jobs.periodic_job(job_id)  # flush as far as the receivers allow
        self.close()
        log.info("daemon stopped", extra={"event": "shutdown"})

    def close(self) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.waker is not None:
            self.waker.stop()
            self.waker = None
        with contextlib.suppress(FileNotFoundError):
            info_path(self.settings).unlink()
        if self.runtime is not None:
            self.runtime.store.close()
        jobs.install(None)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _submit_race_filter(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Error submitting job")


def run_daemon(config_path: Path | None) -> int:
    """Validate the config, start, serve until stopped. Errors raise LeakSentryError."""
    settings, raw = read_config(config_path)
    if config_path is None:
        config_path = settings.path
    setup_logging(settings.daemon.log_format, settings.daemon.log_level)
    daemon = Daemon(settings, config_path, raw)
    try:
        daemon.start()
    except BaseException:
        daemon.close()
        raise
    return daemon.serve()
