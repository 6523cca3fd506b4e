"""One crawl of a big source split across processes (``processes = N``).

Scrapy runs a crawl in one thread, and on a small loopback directory its own
per-request work fills that core (bench/bench_crawl.py: ~4 ms of CPU per
document in the crawl process, against ~0.5 ms of extraction and matching in
the scan worker). A directory or bucket of thousands of files therefore uses
one core however many the machine has. Scrapy's documented answer for that is
to partition the URLs between separate processes; this module does it inside
one ``leaksentry crawl``:

- the parent forks ``N`` children before any Twisted reactor exists; each runs
  an ordinary crawl of the source with a :class:`Shard`;
- every shard reads all listing pages (a few per thousand files) but fetches
  only the items whose id hashes to it (CRC-32, stable across runs and
  machines), so no item is fetched twice and the shards need no coordination
  beyond the shared state store (SQLite in WAL mode takes several writers);
- the source's limits hold for the crawl as a whole: requests in flight, the delay
  between requests, ``max_items`` and the scan workers are divided between the
  shards (crawler.runner);
- each child reports its :class:`RunSummary` on a pipe instead of recording it;
  the parent records ONE run, the counters summed and the worst outcome kept,
  so ``status``, source health and alerts see a single crawl as before.

A child that dies without reporting (killed, crashed) makes the run an error
naming the shard; the documents it processed are in the store all the same.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipelines.model import RunSummary, summary_from_json, summary_to_json
from pipelines.process import die_with

#: worst last: the merged run keeps the worst outcome of its shards
_OUTCOME_RANK = {"ok": 0, "error": 1, "timeout": 2, "killed": 3}


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index} of {self.count} does not exist")

    @classmethod
    def from_setting(cls, value: list[Any]) -> Shard | None:
        """The shard a crawl is, from its ``LEAKSENTRY_SHARD`` setting (``[index, count]``;
        empty: the crawl is not sharded)."""
        return cls(int(value[0]), int(value[1])) if value else None

    def setting(self) -> list[int]:
        return [self.index, self.count]

    def owns(self, item_id: str) -> bool:
        """Whether this shard fetches the item (every item belongs to exactly one)."""
        return zlib.crc32(item_id.encode("utf-8", "surrogatepass")) % self.count == self.index

    def share(self, total: int) -> int:
        """This shard's part of a per-run budget (``max_items``): they add up to ``total``."""
        return total // self.count + (1 if self.index < total % self.count else 0)

    def __str__(self) -> str:
        return f"{self.index + 1}/{self.count}"


def merge(source: str, started: datetime, finished: datetime,
          parts: dict[int, RunSummary], count: int,
          problems: dict[int, str] | None = None, label: str = "shard") -> RunSummary:
    """One run from its shards' summaries. A shard with no summary is an error.
    (Also the parts of a cluster run, scheduler.cluster.runs: ``label = "part"``.)"""
    problems = dict(problems or {})
    for i in range(count):
        if i not in parts and i not in problems:
            problems[i] = "ended without reporting its run"
    statuses: Counter[str] = Counter()
    outcome = "ok"
    errors: list[str] = []
    for i in sorted(parts):
        s = parts[i]
        statuses.update(s.statuses)
        if _OUTCOME_RANK.get(s.outcome, 1) > _OUTCOME_RANK[outcome]:
            outcome = s.outcome if s.outcome in _OUTCOME_RANK else "error"
        if s.error:
            errors.append(f"{label} {Shard(i, count)}: {s.error}")
    for i in sorted(problems):
        errors.append(f"{label} {Shard(i, count)}: {problems[i]}")
        if outcome == "ok":
            outcome = "error"
    got = parts.values()
    return RunSummary(
        source=source, started_at=started, finished_at=finished, outcome=outcome,
        discovered=sum(s.discovered for s in got), fetched=sum(s.fetched for s in got),
        new=sum(s.new for s in got), hits=sum(s.hits for s in got),
        errors=sum(s.errors for s in got) + len(problems),
        statuses=dict(sorted(statuses.items())),
        error="; ".join(errors)[:1000] if errors else None,
    )


def fork_shards(count: int, child: Callable[[Shard, Callable[[RunSummary], None]], None],
                deadline: float) -> tuple[dict[int, RunSummary], dict[int, str]]:
    """Fork ``count`` children running ``child(shard, report)`` and collect what each
    reports. Children still running at ``deadline`` (monotonic) are killed.

    Each child has a process group of its own, so a signal to the parent's group (the
    daemon stopping a crawl, Ctrl-C) reaches the children once: the parent forwards
    SIGTERM/SIGINT, the children stop gracefully and report a "killed" run, which the
    parent records. A child whose parent dies (SIGKILL) is killed too (Linux
    ``PR_SET_PDEATHSIG``)."""
    children: dict[int, tuple[int, int]] = {}  # shard -> (pid, read end)

    def forward(sig: int, frame: object) -> None:
        for pid, _ in children.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    parent = os.getpid()
    try:
        for i in range(count):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child (measured by its report)
                os.close(r)
                code = 1
                try:
                    os.setpgid(0, 0)
                    for sig, handler in previous.items():
                        signal.signal(sig, handler)
                    die_with(parent)
                    child(Shard(i, count), _reporter(w))
                    code = 0
                finally:
                    os._exit(code)
            os.close(w)
            children[i] = (pid, r)
        return _collect(children, deadline)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _reporter(fd: int) -> Callable[[RunSummary], None]:
    def report(summary: RunSummary) -> None:
        data = (summary_to_json(summary) + "\n").encode()
        while data:
            data = data[os.write(fd, data):]

    return report


def _collect(children: dict[int, tuple[int, int]], deadline: float
             ) -> tuple[dict[int, RunSummary], dict[int, str]]:
    pid_of = {r: pid for pid, r in children.values()}
    buffers = {r: b"" for r in pid_of}
    status: dict[int, int] = {}  # read end -> wait status of its child, once reaped
    open_fds = set(buffers)
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select(list(open_fds), [], [], min(left, 0.5))
        for fd in ready:
            chunk = os.read(fd, 65536)
            if chunk:
                buffers[fd] += chunk
            else:
                open_fds.discard(fd)
        # a shard that has exited is done even if its pipe stays open: a process it
        # forked (a scan worker left behind) may still hold the write end
        for fd in list(open_fds):
            pid, st = os.waitpid(pid_of[fd], os.WNOHANG)
            if pid:
                status[fd] = st
                buffers[fd] += _read_available(fd)
                open_fds.discard(fd)
    parts: dict[int, RunSummary] = {}
    problems: dict[int, str] = {}
    for i, (pid, r) in children.items():
        if r in open_fds:  # still running at the deadline
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            problems[i] = "still running past the crawl's timeout; killed"
        os.close(r)
        if r not in status:
            _, status[r] = os.waitpid(pid, 0)
        lines = [x for x in buffers[r].decode("utf-8", "replace").splitlines() if x.strip()]
        if lines:
            try:
                parts[i] = summary_from_json(lines[-1])
            except (ValueError, TypeError, KeyError):
                problems.setdefault(i, "reported an unreadable run")
        elif i not in problems:
            problems[i] = f"ended without reporting its run ({_exit_text(status[r])})"
    return parts, problems


def _read_available(fd: int) -> bytes:
    """What is in the pipe now, without waiting for an end that may not come."""
    os.set_blocking(fd, False)
    out = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 65536):
            out += chunk
    return out


def _exit_text(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"


def run_sharded(source: str, count: int,
                child: Callable[[Shard, Callable[[RunSummary], None]], None],
                timeout: float, record: Callable[[RunSummary], None]) -> RunSummary:
    """Fork the shards, wait at most ``timeout`` seconds, record and return the merged run."""
    started = datetime.now(UTC)
    parts, problems = fork_shards(count, child, time.monotonic() + timeout)
    summary = merge(source, started, datetime.now(UTC), parts, count, problems)
    record(summary)
    return summary
