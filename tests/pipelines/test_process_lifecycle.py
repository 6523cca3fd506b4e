"""Scan workers as processes (issue 20, item 3): they die with the process that started
them, even when it is killed with SIGKILL, and a worker holds no pipe but its own, even
when twenty are started at once by twenty threads. Real processes throughout; /proc
tells which descriptors a worker holds and whether it is still alive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from pipelines.model import Document
from pipelines.process import DocumentScanner


def _alive(pid: int) -> bool:
    """Running (a zombie left to a parent that does not reap counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


def _doc(text: str) -> Document:
    return Document(url="x.txt", source="test", content=text.encode(), filename="x.txt")


#: the "crawl": warm workers started from the main thread and from a thread that has
#: ended since, and a fork-mode worker stuck in a document that never finishes
PARENT = textwrap.dedent("""
    import sys, threading, time
    from pipelines.model import Document, ScanResult
    from pipelines.process import DocumentScanner

    class Stuck:
        def scan(self, parts):
            for part in parts:
                if "HANG" in part.string:
                    time.sleep(3600)
            return ScanResult()

    def doc(text):
        return Document(url="x.txt", source="t", content=text.encode(), filename="x.txt")

    main = DocumentScanner(Stuck(), mode="warm", preload_formats=False)
    main.scan(doc("fine"))
    other = DocumentScanner(Stuck(), mode="warm", preload_formats=False)
    t = threading.Thread(target=other.scan, args=(doc("fine"),))
    t.start(); t.join()
    hung = DocumentScanner(Stuck(), mode="fork", preload_formats=False)
    threading.Thread(target=hung.scan, args=(doc("HANG"),), daemon=True).start()
    stuck = DocumentScanner(Stuck(), mode="warm", preload_formats=False)
    threading.Thread(target=stuck.scan, args=(doc("HANG"),), daemon=True).start()
    time.sleep(0.5)
    print("ready", flush=True)
    time.sleep(3600)
""")


def test_sigkill_of_the_parent_takes_its_workers_with_it(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        workers = _children(proc.pid)
        assert len(workers) == 4 and all(map(_alive, workers))  # 3 warm, 1 mid-document
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [w for w in workers if _alive(w)] == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_worker_outlives_the_thread_that_started_it():
    """The kernel's parent-death signal follows the forking thread: a worker started
    from a pool thread must not die when that thread ends."""
    with DocumentScanner(_Echo(), mode="warm", preload_formats=False) as scanner:
        t = threading.Thread(target=scanner.scan, args=(_doc("one"),))
        t.start()
        t.join()
        pid = scanner._pid
        assert pid is not None
        time.sleep(0.2)
        assert _alive(pid)
        assert scanner.scan(_doc("two")).result.status == "ok"
        assert scanner._pid == pid  # the same worker served both


class _Echo:
    """Stand-in matcher (nothing here depends on what is found)."""

    def scan(self, parts):
        from pipelines.model import ScanResult

        return ScanResult(parts=sum(1 for _ in parts))


def _pipes(pid: int) -> dict[int, str]:
    """fd -> "pipe:[inode]" / "socket:[inode]" of another process (stdio left out)."""
    out = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        fd = int(name)
        if fd <= 2:
            continue
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith(("pipe:", "socket:")):
            out[fd] = target
    return out


def _own(scanner: DocumentScanner) -> set[str]:
    return {f"pipe:[{os.fstat(fd).st_ino}]" for fd in (scanner._to_worker,
                                                       scanner._from_worker)}


@pytest.mark.parametrize("mode", ["warm"])
def test_twenty_workers_started_at_once_hold_only_their_own_pipes(mode):
    scanners = [DocumentScanner(_Echo(), mode=mode, preload_formats=False)
                for _ in range(20)]
    barrier = threading.Barrier(20)
    errors: list[BaseException] = []

    def start(s: DocumentScanner) -> None:
        try:
            barrier.wait()
            assert s.scan(_doc("hello")).result.status == "ok"
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in scanners]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        for s in scanners:
            held = set(_pipes(s._pid).values())
            assert held <= _own(s), f"worker {s._pid} holds {held - _own(s)}"
    finally:
        for s in scanners:
            s.close()
    # and each closed worker saw its end of file and exited by itself
    assert all(s.last_exit == "exited 0" for s in scanners)


def test_a_worker_does_not_hold_the_parents_other_pipes_and_sockets():
    """A pipe or socket the parent opened for something else (a subprocess's stdin,
    a connection) is not kept open by a worker forked meanwhile."""
    import socket

    r, w = os.pipe()
    a, b = socket.socketpair()
    try:
        with DocumentScanner(_Echo(), mode="warm", preload_formats=False) as scanner:
            scanner.scan(_doc("x"))
            held = set(_pipes(scanner._pid).values())
            assert held <= _own(scanner)
    finally:
        for fd in (r, w):
            os.close(fd)
        a.close()
        b.close()
