"""Extract and match one document, where a runaway can be stopped.

A pathological PDF or a regex-heavy monster must not hang the crawler, and
a decompression bomb must not take the machine's memory with it. So each
document is scanned in a forked worker process: the matcher (its
fingerprint file is memory-mapped) is inherited across fork, the worker
gets an address-space limit, and the parent waits at most ``time_limit +
kill_grace`` seconds before killing it. Only the small pickled
:class:`ScanResult` comes back through a pipe.

Two worker modes (``[extract] worker_mode``):

- ``warm`` (default): one long-lived child per :class:`DocumentScanner`;
  documents go to it through a pipe. Measured (bench/bench_extract.py, with
  a 1M-record matcher loaded): about 1.4 ms per small document against
  about 19 ms for a fork per document (in-process: 1.0 ms); for a large
  document the two are within noise of each other. The worker is replaced
  after a timeout, a crash, or ``worker_max_documents``.
- ``fork``: one short-lived child per document; the document's bytes are
  inherited, not copied, and nothing survives a bad document.
- ``inline`` runs in-process (cooperative time limit only), for platforms
  without fork and for debugging.

The extraction's own cooperative time limit usually fires first and keeps
what was read (status ``timeout`` with partial matches); the kill is the
backstop, and then only the status comes back.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import pickle
import resource
import select
import signal
import struct
import threading
import time
import warnings
from typing import TYPE_CHECKING, Any

from leaksentry.config.extract import ExtractConfig
from pipelines.extract import detect, extract, preload
from pipelines.extract.node import Node, safe_name
from pipelines.extract.state import reason
from pipelines.model import Document, Finding, Match, ScanResult

if TYPE_CHECKING:
    from pipelines.match import Matcher

__all__ = ["DocumentScanner", "scan_document", "scan_inline"]

_LEN = struct.Struct("!Q")
_EXTRACT_SHARE = 0.8


def _doc_name(doc: Document) -> str:
    return doc.filename or doc.url or ""


def scan_inline(content: bytes, name: str, matcher: Any, config: ExtractConfig,
                passwords: tuple[str, ...] = ()) -> ScanResult:
    """Extraction + matching in this process. Never raises for bad input."""
    started = time.monotonic()
    # stop extracting at 80% of the limit: the matcher then finishes the parts it holds
    # and the partial result comes back before the worker would be killed
    ex = extract(content, name, config, passwords,
                 until=started + config.time_limit * _EXTRACT_SHARE)
    try:
        result = matcher.scan(ex.parts())
    except MemoryError:
        result = ScanResult(status="too_large", error=f"{_label(name)}: out of memory while "
                                                      f"scanning (worker memory limit)")
    except Exception as e:  # the matcher failing on a document is that document's status
        result = ScanResult(status="error", error=f"{_label(name)}: matching failed: "
                                                  f"{reason(e)}")
    if result.status == "ok" or ex.status not in ("ok", "corrupt", "unsupported"):
        result.status, result.error = ex.status, ex.error
    result.details.update(ex.details)
    result.skipped.extend(ex.skipped)
    result.ocr_pages = result.details.pop("ocr_pages", None)
    result.details["seconds"] = round(time.monotonic() - started, 3)
    return result


def _label(name: str) -> str:
    return safe_name(Node("", name).label)


def _limit_memory(headroom: int) -> None:
    """Cap the worker's address space at what it inherited plus ``headroom``."""
    if headroom <= 0:
        return
    try:
        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
        limit = vm + headroom
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (OSError, ValueError, StopIteration):
        pass


_MATCH_FIELDS = tuple(f.name for f in dataclasses.fields(Match))
_RESULT_FIELDS = tuple(f.name for f in dataclasses.fields(ScanResult) if f.name != "matches")


def _pack(result: ScanResult) -> tuple[str, dict[str, Any], list[tuple[Any, ...]]]:
    """A ScanResult as plain tuples: pickling 100,000 Match objects one by one costs
    about ten times as much as pickling their fields."""
    fields = {name: getattr(result, name) for name in _RESULT_FIELDS}
    matches = [tuple(getattr(m, n) for n in _MATCH_FIELDS) for m in result.matches]
    return ("result", fields, matches)


def _unpack(packed: Any) -> ScanResult:
    _, fields, matches = packed
    return ScanResult(**fields, matches=[Match(*t) for t in matches])


def _write_frame(fd: int, obj: Any, deadline: float | None = None) -> None:
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_LEN.pack(len(payload)) + payload)
    while view:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [fd], [], left)[1]:
                raise _Timeout
        try:
            n = os.write(fd, view[: 1 << 20])
        except BlockingIOError:  # non-blocking pipe (warm worker input) is full
            continue
        view = view[n:]


class _Timeout(Exception):
    pass


class _Died(Exception):
    pass


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Timeout
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                raise _Timeout
        chunk = os.read(fd, min(n - len(buf), 1 << 20))
        if not chunk:
            raise _Died
        buf += chunk
    return bytes(buf)


def _read_frame(fd: int, deadline: float | None) -> Any:
    (size,) = _LEN.unpack(_read_exact(fd, _LEN.size, deadline))
    return pickle.loads(_read_exact(fd, size, deadline))


#: parent-side pipe ends of every live warm worker; a new child closes them, so that
#: closing a worker's input really reaches that worker as end-of-file
_WORKER_FDS: set[int] = set()


def _fork() -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:
        for fd in list(_WORKER_FDS):
            with contextlib.suppress(OSError):
                os.close(fd)
        _WORKER_FDS.clear()
        # the parent (Scrapy, the daemon) owns shutdown: Ctrl-C is its to handle, and its
        # handlers must not run in the worker; SIGTERM simply ends the worker
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return pid


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _reap(pid: int) -> str:
    """Wait for a finished child; describe how it ended."""
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return "worker vanished"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else sig
        return f"worker killed by {name}"
    return f"worker exited with code {os.WEXITSTATUS(status)}"


def _timeout_result(doc: Document, config: ExtractConfig) -> ScanResult:
    name = _doc_name(doc)
    limit = config.time_limit
    return ScanResult(
        status="timeout",
        error=f"{_label(name)}: extraction and matching exceeded the time limit of "
              f"{limit:g} s; the worker was stopped",
        details={"type": detect(doc.content[: 1 << 20], name), "killed": True},
    )


def _died_result(doc: Document, how: str) -> ScanResult:
    name = _doc_name(doc)
    status = "too_large" if "SIGKILL" in how or "MemoryError" in how else "error"
    return ScanResult(status=status, error=f"{_label(name)}: scanning failed: {how}",
                      details={"type": detect(doc.content[: 1 << 20], name)})


class DocumentScanner:
    """Scans documents one after another in a stoppable worker (see module doc).

    ``scan(doc)`` never raises for bad documents; call ``close()`` (or use it
    as a context manager) to stop a warm worker. Calls from several threads are
    serialised (one worker, one document at a time).
    """

    def __init__(self, matcher: Any, config: ExtractConfig | None = None,
                 passwords: tuple[str, ...] = (), mode: str | None = None) -> None:
        self.matcher = matcher
        self.config = config or ExtractConfig()
        self.passwords = tuple(passwords)
        self.mode = mode or self.config.worker_mode
        if self.mode not in ("fork", "warm", "inline"):
            raise ValueError(f"unknown worker mode {self.mode!r}")
        if self.mode != "inline" and not hasattr(os, "fork"):
            self.mode = "inline"
        preload()
        self._pid: int | None = None
        self._to_worker: int | None = None
        self._from_worker: int | None = None
        self._served = 0
        self._lock = threading.Lock()
        #: how the last warm worker ended on close(): "exited 0", "killed" ...
        self.last_exit: str | None = None

    def __enter__(self) -> DocumentScanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public ----------------------------------------------------------------------------

    def scan(self, doc: Document, passwords: tuple[str, ...] = ()) -> Finding:
        pw = tuple(dict.fromkeys((*passwords, *self.passwords)))
        with self._lock:
            if self.mode == "inline":
                result = scan_inline(doc.content, _doc_name(doc), self.matcher, self.config,
                                     pw)
            elif self.mode == "fork":
                result = self._scan_forked(doc, pw)
            else:
                result = self._scan_warm(doc, pw)
        return Finding.of(doc, result)

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._pid is not None:
            for fd in (self._to_worker, self._from_worker):
                if fd is not None:
                    _WORKER_FDS.discard(fd)
                    with contextlib.suppress(OSError):
                        os.close(fd)
            # closing its input ends the worker's loop; kill if it does not go quickly
            deadline = time.monotonic() + 2
            self.last_exit = "vanished"
            while time.monotonic() < deadline:
                try:
                    pid, status = os.waitpid(self._pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid:
                    self.last_exit = f"exited {os.waitstatus_to_exitcode(status)}"
                    break
                time.sleep(0.01)
            else:
                _kill(self._pid)
                self.last_exit = "killed"
            self._pid = self._to_worker = self._from_worker = None

    # -- fork per document -----------------------------------------------------------------

    def _hard_deadline(self) -> float:
        return time.monotonic() + self.config.time_limit + self.config.kill_grace

    def _scan_forked(self, doc: Document, pw: tuple[str, ...]) -> ScanResult:
        r, w = os.pipe()
        deadline = self._hard_deadline()
        pid = _fork()
        if pid == 0:  # the worker
            code = 0
            try:
                os.close(r)
                _limit_memory(self.config.worker_memory_bytes)
                try:
                    result = scan_inline(doc.content, _doc_name(doc), self.matcher,
                                         self.config, pw)
                except MemoryError:
                    result = _died_result(doc, "out of memory (MemoryError)")
                _write_frame(w, _pack(result))
            except BaseException:
                code = 70
            finally:
                os._exit(code)
        os.close(w)
        try:
            return _unpack(_read_frame(r, deadline))
        except _Timeout:
            _kill(pid)
            pid = 0
            return _timeout_result(doc, self.config)
        except (_Died, pickle.UnpicklingError, EOFError, TypeError, ValueError):
            how = _reap(pid)
            pid = 0
            return _died_result(doc, how)
        finally:
            os.close(r)
            if pid:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)

    # -- warm worker -----------------------------------------------------------------------

    def _start_worker(self) -> None:
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        pid = _fork()
        if pid == 0:
            code = 0
            try:
                os.close(to_w)
                os.close(from_r)
                _limit_memory(self.config.worker_memory_bytes)
                self._serve(to_r, from_w)
            except BaseException:
                code = 70
            finally:
                os._exit(code)
        os.close(to_r)
        os.close(from_w)
        os.set_blocking(to_w, False)  # writes wait in select(), under the deadline
        _WORKER_FDS.update((to_w, from_r))
        self._pid, self._to_worker, self._from_worker = pid, to_w, from_r

    def _serve(self, inbox: int, outbox: int) -> None:
        while True:
            try:
                content, name, pw = _read_frame(inbox, None)
            except _Died:
                return
            try:
                result = scan_inline(content, name, self.matcher, self.config, pw)
            except MemoryError:
                result = ScanResult(status="too_large",
                                    error=f"{_label(name)}: out of memory while scanning")
            del content
            _write_frame(outbox, _pack(result))

    def _scan_warm(self, doc: Document, pw: tuple[str, ...]) -> ScanResult:
        if self._pid is not None and self._served >= self.config.worker_max_documents:
            self._close()
        if self._pid is None:
            self._start_worker()
            self._served = 0
        self._served += 1
        assert self._to_worker is not None and self._from_worker is not None
        deadline = self._hard_deadline()
        frame = (doc.content, _doc_name(doc), pw)
        try:
            try:
                _write_frame(self._to_worker, frame, deadline)
            except BrokenPipeError:  # the idle worker died (OOM killer ...): start another
                self._discard(kill=False)
                self._start_worker()
                _write_frame(self._to_worker, frame, deadline)
            return _unpack(_read_frame(self._from_worker, deadline))
        except _Timeout:
            self._discard(kill=True)
            return _timeout_result(doc, self.config)
        except (_Died, BrokenPipeError, pickle.UnpicklingError, EOFError, TypeError,
                ValueError):
            how = self._discard(kill=False)
            return _died_result(doc, how)

    def _discard(self, kill: bool) -> str:
        pid = self._pid
        for fd in (self._to_worker, self._from_worker):
            if fd is not None:
                _WORKER_FDS.discard(fd)
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._pid = self._to_worker = self._from_worker = None
        if pid is None:
            return "worker vanished"
        if kill:
            _kill(pid)
            return "worker killed at the time limit"
        return _reap(pid)


_default: DocumentScanner | None = None


@atexit.register
def _close_default() -> None:
    if _default is not None:
        _default.close()


def scan_document(doc: Document, matcher: Matcher, config: ExtractConfig | None = None,
                  passwords: tuple[str, ...] = ()) -> Finding:
    """Extract and match one document under the per-document time limit.

    Uses a module-level :class:`DocumentScanner` (re-made when the matcher or
    config changes); callers scanning many documents may hold their own.
    """
    global _default
    cfg = config or ExtractConfig()
    if _default is None or _default.matcher is not matcher or _default.config != cfg:
        if _default is not None:
            _default.close()
        _default = DocumentScanner(matcher, cfg)
    return _default.scan(doc, tuple(passwords))
