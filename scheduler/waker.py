"""Deliver alerts as soon as they are planned, not at the next outbox run.

The daemon owns one pipe. Every crawl subprocess inherits its write end
(:mod:`pipelines.alerts.wake`) and writes a byte once a hit is committed; the
daemon's own health job does the same through :meth:`AlertWaker.wake`. One
thread waits on the read end and runs a delivery pass per wake-up (bytes that
arrive during a pass cause one more pass, so nothing planned meanwhile waits
for the interval). It also runs one pass as soon as it starts: alerts left
pending by a stopped or killed daemon go out right after the restart. The
``outbox`` interval job stays as the backstop (retries that come due, a crawl
started outside the daemon).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import select
import threading
from collections.abc import Callable

from pipelines.alerts.wake import ENV

log = logging.getLogger("leaksentry.scheduler.waker")


class AlertWaker:
    def __init__(self, deliver: Callable[[], None]) -> None:
        self._deliver = deliver
        self._read, self._write = os.pipe()
        # writers never block (a full pipe already holds a wake-up); the read end
        # is a separate open file description and stays blocking for select()
        flags = fcntl.fcntl(self._write, fcntl.F_GETFL)
        fcntl.fcntl(self._write, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="alert-waker", daemon=True)

    # -- for the daemon -------------------------------------------------------------
    @property
    def child_fds(self) -> tuple[int, ...]:
        """Descriptors a crawl subprocess keeps open (``pass_fds``)."""
        return (self._write,)

    def child_env(self) -> dict[str, str]:
        """The crawl's environment: the daemon's plus the pipe's descriptor number (an
        environment variable, not a crawl setting: it is a handshake between two processes,
        read by whatever records a hit in the child, crawl or not)."""
        return {**os.environ, ENV: str(self._write)}

    def start(self) -> AlertWaker:
        self._thread.start()
        return self

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._write, b"!")

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self.wake()
        if self._thread.is_alive():
            self._thread.join(timeout)
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- the thread ------------------------------------------------------------------
    def _drain(self) -> bool:
        """Empty the pipe; True when anything was in it."""
        got = False
        while select.select([self._read], [], [], 0)[0]:
            try:
                if not os.read(self._read, 4096):
                    break
            except OSError:
                break
            got = True
        return got

    def _loop(self) -> None:
        self._pass()  # whatever a previous daemon left pending
        while not self._stop.is_set():
            try:
                ready = select.select([self._read], [], [], 1.0)[0]
            except (OSError, ValueError):  # closed under us: stopping
                return
            if not ready or self._stop.is_set():
                continue
            self._drain()
            self._pass()

    def _pass(self) -> None:
        try:
            self._deliver()
        except Exception:  # the job logs its own failures; never end the thread
            log.exception("alert delivery pass failed")
