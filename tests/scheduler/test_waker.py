"""The alert wake-up pipe: a crawl subprocess's byte makes the daemon deliver now."""

from __future__ import annotations

import subprocess
import sys
import threading

from pipelines.alerts.wake import ENV, wake, wake_fd
from scheduler.waker import AlertWaker


def test_a_byte_from_a_child_process_runs_a_delivery_pass():
    passes: list[int] = []
    ran = threading.Semaphore(0)

    def deliver() -> None:
        passes.append(1)
        ran.release()

    waker = AlertWaker(deliver).start()
    try:
        assert ran.acquire(timeout=30)  # the pass at start: what a previous daemon left
        code = "from pipelines.alerts.wake import wake; wake(); wake()"
        subprocess.run([sys.executable, "-c", code], env=waker.child_env(),
                       pass_fds=waker.child_fds, check=True, timeout=60)
        assert ran.acquire(timeout=30)
        waker.wake()  # the daemon's own health job
        assert ran.acquire(timeout=30)
    finally:
        waker.stop()
    assert len(passes) >= 3


def test_without_the_daemon_wake_does_nothing(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV, raising=False)
    assert wake_fd() is None
    wake()  # no error
    with (tmp_path / "f").open("w") as fh:  # a descriptor that is not a pipe: ignored
        monkeypatch.setenv(ENV, str(fh.fileno()))
        assert wake_fd() is None
        wake()
    assert (tmp_path / "f").read_text() == ""
