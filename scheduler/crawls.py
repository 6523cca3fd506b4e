"""One crawl = one subprocess (`leaksentry crawl NAME --config FILE`).

Why a subprocess: the Twisted reactor cannot be restarted in a process, and
Playwright's memory grows over long runs (REFERENCE.md). The child runs in
its own session (process group), so a timeout stops the crawl *and* the
Chromium it started: SIGTERM to the group, then SIGKILL after ``kill_after``.

The child records its own RunSummary in the state store. When it cannot (it
was killed, or died before recording), the runner records one for it, so
every crawl leaves a row in ``source_runs``. A pid file per running
crawl lets a restarted daemon stop crawls orphaned by a ``kill -9``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from leaksentry.config.sources import DEFAULT_UNHEALTHY_AFTER
from leaksentry.processes import alive
from leaksentry.store import Store
from leaksentry.store.engine import Row
from leaksentry.store.failures import store_failure, unreachable
from leaksentry.store.unrecorded import defer_run, record_or_defer, replay_deferred
from pipelines.model import RunSummary

log = logging.getLogger("leaksentry.scheduler.crawls")

#: crawl outcomes recorded by the runner itself
TIMEOUT = "timeout"
KILLED = "killed"
ERROR = "error"


@dataclass(frozen=True, slots=True)
class CrawlResult:
    source: str
    outcome: str  # ok | error | timeout | killed
    returncode: int | None
    run_id: int | None  # the source_runs row for this crawl
    discovered: int = 0
    fetched: int = 0
    new: int = 0
    hits: int = 0
    error: str | None = None


def crawl_command(source: str, config_path: Path | str | None,
                  base: list[str] | None = None, config_sha256: str | None = None,
                  extra: list[str] | None = None) -> list[str]:
    """The command line of one crawl. The only place it is built.

    ``base`` is ``[daemon] crawl_command`` (tests point it at a stand-in
    script; operators may wrap the crawl with ``nice`` or similar). The daemon
    passes its config snapshot and its hash (``--config-sha256``): the crawl
    refuses a file that is not the one the daemon validated.
    """
    cmd = list(base) if base else [sys.executable, "-m", "leaksentry", "crawl"]
    cmd.append(source)
    if config_path is not None:
        cmd += ["--config", str(config_path)]
        if config_sha256 is not None:
            cmd += ["--config-sha256", config_sha256]
    return cmd + list(extra or [])


def command_settings(base: list[str] | None) -> dict[str, str]:
    """The Scrapy settings a ``[daemon] crawl_command`` sets (``-s NAME=VALUE``,
    ``--set NAME=VALUE``, ``--set=NAME=VALUE``): e.g. tests replacing the scanner."""
    out: dict[str, str] = {}
    args = list(base or [])
    for i, arg in enumerate(args):
        if arg in ("-s", "--set") and i + 1 < len(args):
            pair = args[i + 1]
        elif arg.startswith("--set="):
            pair = arg[len("--set="):]
        elif arg.startswith("-s") and len(arg) > 2 and not arg.startswith("--"):
            pair = arg[2:]
        else:
            continue
        name, eq, value = pair.partition("=")
        if eq:
            out[name.strip()] = value
    return out


class RunningCrawls:
    """The crawls running now, with pid files so a restarted daemon finds orphans."""

    def __init__(self, pid_dir: Path) -> None:
        self.pid_dir = pid_dir
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._stopped: set[str] = set()  # stopped by shutdown, not by a timeout
        self._lock = threading.Lock()
        pid_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _pidfile(self, source: str) -> Path:
        return self.pid_dir / f"{_safe(source)}.json"

    def add(self, source: str, proc: subprocess.Popen[bytes], started_at: datetime) -> None:
        with self._lock:
            self._procs[source] = proc
        _write_json(self._pidfile(source), {"source": source, "pid": proc.pid,
                                            "proc_start": _proc_start(proc.pid),
                                            "started_at": started_at.isoformat()})

    def remove(self, source: str) -> None:
        with self._lock:
            self._procs.pop(source, None)
            self._stopped.discard(source)
        with contextlib.suppress(FileNotFoundError):
            self._pidfile(source).unlink()

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._procs)

    def was_stopped(self, source: str) -> bool:
        with self._lock:
            return source in self._stopped

    def stop_all(self, kill_after: float) -> None:
        """SIGTERM every crawl's process group, then SIGKILL what is left."""
        with self._lock:
            procs = dict(self._procs)
            self._stopped.update(procs)
        for proc in procs.values():
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + kill_after
        for proc in procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        for proc in procs.values():
            _signal_group(proc.pid, signal.SIGKILL)

    def kill_all_now(self) -> None:
        """SIGKILL every crawl. Takes no lock: it runs in a signal handler, which may
        have interrupted this very thread while it held the lock."""
        procs: list[subprocess.Popen[bytes]] = []
        for _ in range(5):
            try:
                procs = list(self._procs.values())
                break
            except RuntimeError:  # changed size while copying: try again
                continue
        for proc in procs:
            _signal_group(proc.pid, signal.SIGKILL)

    def reap_orphans(self, store: Store, kill_after: float = 5.0) -> list[str]:
        """Stop crawls left running by a daemon that died; record them as killed."""
        reaped = []
        for pidfile in sorted(self.pid_dir.glob("*.json")):
            try:
                info = json.loads(pidfile.read_text())
                source, pid = str(info["source"]), int(info["pid"])
                started = datetime.fromisoformat(info["started_at"])
            except (OSError, ValueError, KeyError, TypeError):
                pidfile.unlink(missing_ok=True)
                continue
            # after a reboot the pid may belong to something else: only a process
            # with the same start time is our crawl
            ours = info.get("proc_start") is not None and \
                _proc_start(pid) == info.get("proc_start")
            if ours and alive(pid, group=True):
                log.warning("stopping crawl of %s (pid %d) left by a previous daemon",
                            source, pid)
                _signal_group(pid, signal.SIGTERM)
                deadline = time.monotonic() + kill_after
                while alive(pid, group=True) and time.monotonic() < deadline:
                    time.sleep(0.05)
                _signal_group(pid, signal.SIGKILL)
            if _last_run_id_since(store, source, started) is None:
                _record(store, source, started, KILLED,
                        "the daemon stopped during the crawl (crawl stopped at restart)", 3)
            pidfile.unlink(missing_ok=True)
            reaped.append(source)
        return reaped


def run_crawl(
    store: Store,
    source: str,
    config_path: Path | str | None,
    *,
    timeout: float,
    kill_after: float = 10.0,
    base_command: list[str] | None = None,
    running: RunningCrawls | None = None,
    on_output: Callable[[str, str], None] | None = None,
    env: dict[str, str] | None = None,
    unhealthy_after: int = DEFAULT_UNHEALTHY_AFTER,
    config_sha256: str | None = None,
    pass_fds: tuple[int, ...] = (),
    extra_args: list[str] | None = None,
    key: str | None = None,
    records: bool = True,
) -> CrawlResult:
    """Run one crawl to completion or to its timeout; always leaves one run recorded.

    The crawl's own record wins (it knows best, e.g. the crawler records "killed"
    when SIGTERM interrupts it); the runner records one only when the crawl did not.

    ``on_output(source, line)`` receives the child's output lines (default: logged).
    ``pass_fds`` stay open in the child (the daemon's alert wake-up pipe).
    ``key`` names the crawl in ``running`` (default: the source; a cluster worker runs
    several parts of one source). ``records=False``: the crawl reports its run elsewhere
    (a part of a cluster run, scheduler.cluster.runs): nothing is read or recorded here.
    """
    cmd = crawl_command(source, config_path, base_command, config_sha256, extra_args)
    key = key or source
    started = datetime.now(UTC)
    try:
        replay_deferred(store)  # runs kept while the store was unreachable
        before = _max_run_id(store)
    except Exception as exc:
        if not unreachable(exc):
            raise
        # the crawl could not record anything either: not started, its items stay
        # unseen (fetched by the next run), the run kept until the store is back
        msg = f"crawl not started: {store_failure(store.where, exc)}"
        if records:
            defer_run(store.state_dir, RunSummary(source, started, datetime.now(UTC), ERROR,
                                                  error=msg), unhealthy_after=unhealthy_after)
        log.error("crawl of %s failed: %s", source, msg, extra={"source": source})
        return CrawlResult(source, ERROR, None, None, error=msg)
    log.info("crawl of %s started", source, extra={"source": source})
    try:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True, env=env, pass_fds=pass_fds,
        )
    except OSError as exc:
        msg = f"cannot start crawl command {cmd[0]!r}: {exc.strerror or exc}"
        run_id = _record(store, source, started, ERROR, msg, unhealthy_after) if records \
            else None
        log.error("crawl of %s failed: %s", source, msg, extra={"source": source})
        return CrawlResult(source, ERROR, None, run_id, error=msg)
    if running is not None:
        running.add(key, proc, started)
    tail: list[str] = []
    reader = threading.Thread(target=_pump, args=(proc, source, tail, on_output),
                              name=f"crawl-output-{source}", daemon=True)
    reader.start()
    timed_out = False
    try:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            log.warning("crawl of %s exceeded its %gs timeout: terminating", source, timeout,
                        extra={"source": source})
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=kill_after)
            except subprocess.TimeoutExpired:
                log.warning("crawl of %s ignored SIGTERM for %gs: killing", source, kill_after,
                            extra={"source": source})
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        _signal_group(proc.pid, signal.SIGKILL)  # leftovers (e.g. a browser) in its group
        reader.join(timeout=5)
        stopped = running.was_stopped(key) if running is not None else False
    finally:
        if running is not None:
            running.remove(key)
    rc = proc.returncode
    if not records:
        outcome = TIMEOUT if timed_out else KILLED if stopped else "ok" if rc == 0 else ERROR
        return CrawlResult(source, outcome, rc, None,
                           error=tail[-1][:300] if outcome != "ok" and tail else None)
    try:
        row = _run_after(store, source, before)
    except Exception as exc:
        if not unreachable(exc):
            raise
        msg = (f"the run could not be read back: {store_failure(store.where, exc)}"
               f" (crawl exit {rc})")
        defer_run(store.state_dir, RunSummary(source, started, datetime.now(UTC), ERROR,
                                              error=msg),
                  unhealthy_after=unhealthy_after, unless_recorded=True)
        log.error("crawl of %s: %s", source, msg, extra={"source": source})
        return CrawlResult(source, ERROR, rc, None, error=msg)
    if row is None:  # the crawl could not record its run: record it for the crawl
        if timed_out:
            outcome, error = TIMEOUT, (f"crawl exceeded the daemon's {timeout:g}s limit"
                                       " and was stopped")
        elif stopped:
            outcome, error = KILLED, "crawl stopped because the daemon is shutting down"
        else:
            outcome = ERROR
            error = f"crawl exited with status {rc} without recording a run"
            if tail:
                error += f": {tail[-1][:300]}"
        run_id = _record(store, source, started, outcome, error, unhealthy_after)
        row = _row(store, run_id) if run_id is not None else None
        if row is None:  # kept until the store is back
            return CrawlResult(source, outcome, rc, None, error=error)
    outcome, error = row["outcome"], row["error"]
    result = CrawlResult(
        source=source, outcome=outcome, returncode=rc, run_id=row["id"] if row else None,
        discovered=row["discovered"] if row else 0, fetched=row["fetched"] if row else 0,
        new=row["new"] if row else 0, hits=row["hits"] if row else 0, error=error,
    )
    level = logging.INFO if outcome == "ok" else logging.WARNING
    log.log(level, "crawl of %s finished: %s (exit %s, %d fetched, %d hits)%s", source,
            outcome, rc, result.fetched, result.hits, f": {error}" if error else "",
            extra={"source": source, "outcome": outcome, "returncode": rc,
                   "fetched": result.fetched, "hits": result.hits})
    return result


# -- helpers -----------------------------------------------------------------

def _pump(proc: subprocess.Popen[bytes], source: str, tail: list[str],
          on_output: Callable[[str, str], None] | None) -> None:
    assert proc.stdout is not None
    child_log = logging.getLogger("leaksentry.crawl")
    for raw in proc.stdout:
        line = raw.decode("utf-8", "replace").rstrip()
        if not line:
            continue
        tail.append(line)
        del tail[:-20]
        if on_output is not None:
            on_output(source, line)
        else:
            # the crawl's own warnings and errors stay visible; its chatter is debug
            level = logging.WARNING if _PROBLEM.search(line) else logging.DEBUG
            child_log.log(level, "%s", line, extra={"source": source})
    proc.stdout.close()


#: a log record of the crawl at warning level or above, by the level field of Scrapy's
#: LOG_FORMAT (``DATE TIME [logger] WARNING: msg``; shards: ``... [logger] shard 1/2
#: ERROR: msg``), or a traceback. Not a level word elsewhere in a line: the stats dump's
#: ``'log_count/WARNING': 1,`` is routine output
_PROBLEM = re.compile(
    r"^(?:\S+ \S+ \[[^\]]*\] (?:shard \S+ )?(?:WARNING|ERROR|CRITICAL):|Traceback \(most recent)")


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _proc_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _max_run_id(store: Store) -> int:
    return int(store.conn.execute("SELECT coalesce(max(id), 0) FROM source_runs").fetchone()[0])


def _run_after(store: Store, source: str, after_id: int) -> Row | None:
    row: Row | None = store.conn.execute(
        "SELECT * FROM source_runs WHERE source = ? AND id > ? ORDER BY id DESC LIMIT 1",
        (source, after_id),
    ).fetchone()
    return row


def _row(store: Store, run_id: int) -> Row:
    row: Row = store.conn.execute("SELECT * FROM source_runs WHERE id = ?",
                                          (run_id,)).fetchone()
    return row


def _last_run_id_since(store: Store, source: str, started: datetime) -> int | None:
    row = store.conn.execute(
        "SELECT max(id) FROM source_runs WHERE source = ? AND started_at >= ?",
        (source, started.isoformat()),
    ).fetchone()
    return row[0] if row and row[0] else None


def _record(store: Store, source: str, started: datetime, outcome: str, error: str,
            unhealthy_after: int) -> int | None:
    """Record a run for the crawl; None when the store cannot be reached (the run is
    kept in the journal of :func:`leaksentry.store.unrecorded.record_or_defer`)."""
    return record_or_defer(store, RunSummary(source=source, started_at=started,
                                             finished_at=datetime.now(UTC), outcome=outcome,
                                             error=error),
                           unhealthy_after=unhealthy_after)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
