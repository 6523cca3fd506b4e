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

A local file (:meth:`DocumentScanner.scan_file`, what `leaksentry scan` uses) is
not sent through the pipe: the worker gets its path, checks it is still the file
the parent looked at, reads it itself (bounded by the input limit, see
:mod:`pipelines.localfile`) and hashes it in a thread while it scans. For `leaksentry
scan`, a small plain file is scanned in the calling process instead (nothing in it
could need the worker's limits: :data:`INLINE_MAX_BYTES`), and a large plain text may be
scanned in two halves at once when a CPU is spare (:data:`SPLIT_MIN_BYTES`): both give
the result the worker would have.

Workers die with the process that started them: each sets ``PR_SET_PDEATHSIG``
(SIGKILL) and then checks that its parent is still the one that forked it; forks
asked for by other threads are made by one long-lived thread, because the kernel
sends that signal when the *thread* that forked exits. A worker stays in its
parent's process group (the daemon kills a crawl's whole group), and right after
fork it drops every pipe and socket it inherited but its own two pipe ends, so that
a worker started at the same time by another thread never holds this one's pipe
(which would keep it waiting for an end-of-file that never comes).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import dataclasses
import hashlib
import os
import pickle
import queue
import resource
import select
import signal
import stat
import struct
import threading
import time
import warnings
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from leaksentry.config.extract import ExtractConfig
from pipelines import localfile
from pipelines.extract import Extraction, detect, extract, preload
from pipelines.extract.encoded import blob_candidates
from pipelines.extract.node import Node, safe_name
from pipelines.extract.state import reason
from pipelines.extract.text import chunk_end, count_newlines, sniff_encoding
from pipelines.model import (
    Document,
    Finding,
    Match,
    ScanResult,
    Skipped,
    Status,
    TextPart,
    utcnow,
)

if TYPE_CHECKING:
    from pipelines.match import Matcher

__all__ = ["DocumentScanner", "scan_document", "scan_file", "scan_inline"]

_LEN = struct.Struct("!Q")
_EXTRACT_SHARE = 0.8


def _doc_name(doc: Document) -> str:
    return doc.filename or doc.url or ""


def scan_inline(content: bytes, name: str, matcher: Matcher, config: ExtractConfig,
                passwords: tuple[str, ...] = (), split: bool = False) -> ScanResult:
    """Extraction + matching in this process. Never raises for bad input. ``split``: a
    large plain text may be scanned in two halves at once (see :func:`_scan_split`)."""
    started = time.monotonic()
    # stop extracting at 80% of the limit: the matcher then finishes the parts it holds
    # and the partial result comes back before the worker would be killed
    until = started + config.time_limit * _EXTRACT_SHARE
    ex = extract(content, name, config, passwords, until=until)
    cut = _split_point(content, name, config) if split else None
    result: ScanResult
    try:
        if cut is None:
            result = matcher.scan(ex.parts())
        else:
            result = _scan_split(ex, cut, matcher, until + config.kill_grace)
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


# -- a large plain text in two halves at once ------------------------------------------------

#: a plain UTF-8 text at least this large is cut in two when the caller allows it
#: (`leaksentry scan`) and a CPU is spare: the halves are scanned at once, the second in
#: a forked child, and their states merged. Measured on 2 CPUs, 100 MB, whole `scan`
#: process: best 0.62 s instead of 0.71 s with the second CPU mostly idle (5 % more CPU
#: time), no faster and 11 % more CPU time when other work keeps it busy, hence
#: :func:`_spare_cpu`. A crawl does not split (its processes already share the CPUs)
SPLIT_MIN_BYTES = 16 << 20
#: the second half starts a little past the middle: its process first counts the lines
#: before it
_SPLIT_AT = 0.53
#: what a half's extraction must have found for the halves to stand for the whole:
#: plain UTF-8 text, nothing embedded, nothing skipped, no problem
_CLEAN_DETAILS = {"type": "text", "encoding": "utf-8"}


def _spare_cpu() -> bool:
    """Another CPU this process may use is (about) idle: the load average over the last
    minute, less this scan's own (one task), leaves one and a half of them."""
    try:
        cpus = len(os.sched_getaffinity(0))
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return False
    return cpus - max(0.0, load - 1.0) >= 1.5


def _split_point(data: bytes, name: str, config: ExtractConfig) -> int | None:
    """Where a large plain UTF-8 text is cut in two: the end of a plain-text chunk (the
    chunks after it are then the whole text's), the one nearest :data:`_SPLIT_AT` of
    the text; or None."""
    n = len(data)
    size = config.text_chunk_chars
    if (n < max(SPLIT_MIN_BYTES, 2 * size) or n > config.max_input_bytes
            or detect(data, name) != "text" or sniff_encoding(data) != "utf-8"
            or not _spare_cpu()):
        return None
    aim = int(n * _SPLIT_AT)
    pos = 0
    while True:
        end = chunk_end(data, pos, size)
        if end >= n:
            return pos or None
        if end >= aim:  # the first end past the aim, or the one before it
            return pos if pos and aim - pos < end - aim else end
        pos = end


def _upto(parts: Iterator[TextPart], end: int, exact: list[bool]) -> Iterator[TextPart]:
    """The parts of a plain text up to byte ``end`` of it; ``exact[0]`` stays True when
    they were its chunks, ending there (not an embedded payload, no NULs replaced)."""
    total = 0
    for part in parts:
        yield part
        if type(part.text) is not bytes:
            exact[0] = False
        total += len(part.text)
        if total >= end:
            break
    exact[0] = exact[0] and total == end


def _scan_split(ex: Extraction, cut: int, matcher: Matcher, deadline: float) -> ScanResult:
    """The plain text of ``ex`` up to ``cut`` scanned here while a forked child scans the
    rest (located from the line it starts on); the child's matcher state merged into
    this one's (:meth:`~pipelines.match.scanner.Matcher.merge`) gives the result of one
    scan. When the child cannot say, or either half was not clean plain text (an
    embedded payload, a limit, the time), or the child's labels must be looked at in
    order, this process goes on with the rest itself: the one scan."""
    data, name, config, pw, until = ex.data, ex.name, ex.config, ex.passwords, ex.until
    r, w = os.pipe()

    def body() -> None:  # the second half, in the child
        os.close(r)
        line = count_newlines(data, 0, cut) + 1
        rest = extract(data, name, config, pw, until=until, start=cut, first_line=line)
        state = matcher.start()
        matcher.feed(state, rest.parts())
        clean = (rest.status, rest.details, rest.skipped) == ("ok", _CLEAN_DETAILS, [])
        _write_frame(w, (clean, matcher.detach(state)))

    try:
        pid = _fork(body, {w})
    except OSError:  # no fork (process limit): one scan
        os.close(r)
        return matcher.scan(ex.parts())
    finally:
        os.close(w)
    parts = ex.parts()
    state = matcher.start()
    try:
        exact = [True]  # a list: the generator below sets it
        matcher.feed(state, _upto(parts, cut, exact))
        try:
            clean, (later, labels) = _read_frame(r, deadline)
        except (_Timeout, _Died, pickle.UnpicklingError, EOFError, TypeError, ValueError):
            clean = False
        # this half's problems and skips show in the live details and list
        mine = exact[0] and ex.details == _CLEAN_DETAILS and not ex.skipped
        if (mine and clean and state.parts + later.parts <= config.max_parts
                and matcher.merge(state, later, labels)):
            if isinstance(parts, Generator):
                parts.close()  # the extraction ends here (its status: this half's, ok)
        else:
            matcher.feed(state, parts)
    finally:
        os.close(r)
        _kill(pid, wait=False)
    return matcher.finish(state)


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

#: what a worker says about a local file it read: (sha256 or None, size in bytes)
FileFacts = tuple[str | None, int]


def _pack(result: ScanResult, facts: FileFacts | None = None
          ) -> tuple[str, dict[str, Any], list[tuple[Any, ...]], FileFacts | None]:
    """A ScanResult as plain tuples: pickling 100,000 Match objects one by one costs
    about ten times as much as pickling their fields."""
    fields = {name: getattr(result, name) for name in _RESULT_FIELDS}
    matches = [tuple(getattr(m, n) for n in _MATCH_FIELDS) for m in result.matches]
    return ("result", fields, matches, facts)


def _unpack(packed: Any) -> tuple[ScanResult, FileFacts | None]:
    _, fields, matches, facts = packed
    return ScanResult(**fields, matches=[Match(*t) for t in matches]), facts


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


# -- local files ----------------------------------------------------------------------------

def _hash_in_thread(data: bytes) -> Callable[[], str]:
    """sha256 of ``data`` on another thread (hashlib lets go of the GIL), while this one
    scans; the returned call waits for it."""
    out: list[str] = []
    t = threading.Thread(target=lambda: out.append(hashlib.sha256(data).hexdigest()),
                         name="sha256", daemon=True)
    t.start()

    def result() -> str:
        t.join()
        return out[0]

    return result


def _not_read(name: str, exc: localfile.NotRead) -> ScanResult:
    """The result of an input that was not (wholly) read: never clean, and what was not
    read is listed as skipped."""
    error = f"{_label(name)}: {exc.reason}"
    return ScanResult(status=exc.status, error=error,
                      skipped=[Skipped(where=_label(name), status=exc.status, error=error)],
                      details={"size": exc.size} if exc.size else {})


def _scan_local(f: localfile.Regular, name: str, matcher: Matcher, config: ExtractConfig,
                pw: tuple[str, ...], split: bool = False) -> tuple[ScanResult, FileFacts]:
    """Read a local file here (the worker), hash it alongside the scan, scan it."""
    try:
        data = localfile.read_regular(f, config.max_input_bytes)
    except localfile.NotRead as exc:
        return _not_read(name, exc), (None, exc.size or f.size)
    except OSError as exc:
        err = f"{_label(name)}: cannot read: {exc.strerror or type(exc).__name__}"
        return ScanResult(status="error", error=err), (None, f.size)
    digest = _hash_in_thread(data)
    try:
        result = scan_inline(data, name, matcher, config, pw, split)
    except MemoryError:
        result = ScanResult(status="too_large",
                            error=f"{_label(name)}: out of memory while scanning")
    return result, (digest(), len(data))


def _head(f: localfile.Regular) -> bytes:
    """The first bytes of a file, to name its type after its worker failed."""
    try:
        with open(f.path, "rb") as fh:
            return fh.read(1 << 16)
    except OSError:
        return b""


def _file_sha256(f: localfile.Regular, limit: int) -> str | None:
    """Streamed sha256 of a file whose worker failed (it is within the input limit)."""
    h = hashlib.sha256()
    try:
        with open(f.path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if (st.st_dev, st.st_ino) != (f.dev, f.ino):
                return None
            total = 0
            while block := fh.read(1 << 20):
                total += len(block)
                if total > limit:
                    return None
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


# -- forking --------------------------------------------------------------------------------

PR_SET_PDEATHSIG = 1
_libc: Any = None


def _prctl() -> Any:
    """libc's prctl, found in the parent (once) so that a child only calls it."""
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):  # not Linux: rely on the pipes' end-of-file
            _libc = False
    return _libc


def die_with(parent: int, sig: int = signal.SIGKILL) -> None:
    """In a newly forked child: be killed (SIGKILL) when the parent dies, then make sure
    it has not died already (the child would have been re-parented before the signal
    was armed). Linux only; elsewhere the children notice their pipes closing. The
    signal follows the *thread* that forked: fork from a thread that lives as long as
    the process (see :func:`_fork`). A crawl started by a cluster worker asks for
    SIGTERM instead: it stops its browser and records a "killed" run."""
    prctl = _prctl()
    if prctl:
        prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(0)


def _drop_inherited(keep: set[int]) -> None:
    """In a new worker: every inherited pipe and socket but ``keep`` and stdio is
    replaced by /dev/null (closed, as far as the other end can tell; the number stays
    taken, so a stray close of the parent's object in the worker cannot hit a file the
    worker opened later). Regular files (the fingerprint mapping) stay."""
    try:
        fds = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 4096))
    null = -1
    try:
        for fd in fds:
            if fd <= 2 or fd in keep:
                continue
            try:
                mode = os.fstat(fd).st_mode
            except OSError:
                continue  # not open (the directory listing's own descriptor)
            if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
                if null < 0:
                    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
                os.dup2(null, fd, inheritable=False)
    finally:
        if null >= 0:
            os.close(null)


def _child_start(parent: int, keep: set[int]) -> None:
    die_with(parent)
    _drop_inherited(keep)
    # the parent (Scrapy, the daemon) owns shutdown: Ctrl-C is its to handle, and its
    # handlers must not run in the worker; SIGTERM simply ends the worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _fork_here(body: Callable[[], None], keep: set[int]) -> int:
    parent = os.getpid()
    _prctl()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:
        code = 0
        try:
            _child_start(parent, keep)
            body()
        except BaseException:
            code = 70
        finally:
            os._exit(code)
    return pid


class _Forker:
    """One long-lived thread that makes the forks other threads ask for: the kernel's
    parent-death signal follows the forking *thread*, and a pool thread that ends must
    not take the workers it started with it."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], None], set[int],
                                      queue.Queue[int | BaseException]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def fork(self, body: Callable[[], None], keep: set[int]) -> int:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="worker-forker",
                                                daemon=True)
                self._thread.start()
        reply: queue.Queue[int | BaseException] = queue.Queue(maxsize=1)
        self._jobs.put((body, keep, reply))
        got = reply.get()
        if isinstance(got, BaseException):
            raise got
        return got

    def _run(self) -> NoReturn:
        while True:
            body, keep, reply = self._jobs.get()
            try:
                reply.put(_fork_here(body, keep))
            except BaseException as exc:  # e.g. fork refused: the caller gets it
                reply.put(exc)


_forker = _Forker()


def _fork(body: Callable[[], None], keep: set[int]) -> int:
    """Start a worker running ``body`` (it ends with ``os._exit``); returns its pid."""
    if threading.current_thread() is threading.main_thread():
        return _fork_here(body, keep)
    return _forker.fork(body, keep)


def _kill(pid: int, wait: bool = True) -> None:
    """Kill a child and reap it; ``wait=False``: reaped on a thread (a child that used a
    lot of memory takes a while to go)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not wait:
        threading.Thread(target=_kill, args=(pid,), name="reap", daemon=True).start()
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _pidfd(pid: int) -> int:
    """A descriptor that becomes readable when child ``pid`` exits (Linux 5.3), or -1."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return -1


def _nap(exit_fd: int, deadline: float) -> None:
    """Wait for a child's exit: woken by the exit itself when there is a pidfd, else a
    10 ms nap (the CLI waits for its worker on the way out; half a nap on average was
    the whole of that wait)."""
    if exit_fd >= 0:
        select.select([exit_fd], [], [], max(0.0, deadline - time.monotonic()))
    else:
        time.sleep(0.01)


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


def _timeout_result(name: str, head: bytes, config: ExtractConfig) -> ScanResult:
    limit = config.time_limit
    return ScanResult(
        status="timeout",
        error=f"{_label(name)}: extraction and matching exceeded the time limit of "
              f"{limit:g} s; the worker was stopped",
        details={"type": detect(head, name), "killed": True},
    )


def _died_result(name: str, head: bytes, how: str) -> ScanResult:
    status: Status = "too_large" if "SIGKILL" in how or "MemoryError" in how else "error"
    return ScanResult(status=status, error=f"{_label(name)}: scanning failed: {how}",
                      details={"type": detect(head, name)})


#: `scan_file` of a small local file of these types, holding no encoded blob, runs in
#: the calling process when the scanner allows it (``inline_small``): nothing in it is
#: decompressed (a blob could hold an archive) and plain text, JSON and NDJSON are read
#: in linear time (CSV is not here: its dialect sniffing meets hostile rows), so the
#: worker's kill and memory limit have nothing to stop, and its start (fork, a pipe
#: round trip, its exit) would cost more than the scan (`leaksentry scan` of a 10 kB
#: file: 26 ms of 0.43 s)
INLINE_MAX_BYTES = 256 << 10
_INLINE_KINDS = frozenset({"text", "json", "ndjson"})

#: one job for a worker: the document's bytes, or a local file it reads itself
_Job = tuple[bytes | None, localfile.Regular | None, str, tuple[str, ...]]


class DocumentScanner:
    """Scans documents one after another in a stoppable worker (see module doc).

    ``scan(doc)`` and ``scan_file(path)`` never raise for bad documents; call
    ``close()`` (or use it as a context manager) to stop a warm worker. Calls from
    several threads are serialised (one worker, one document at a time).
    ``preload_formats``: import every format library before the first fork (a crawl,
    whose workers are replaced now and then); a one-off `scan` imports what it meets.
    ``inline_small``: ``scan_file`` of a small plain file runs in this process (see
    :data:`INLINE_MAX_BYTES`); same result, without a worker. ``split_large``: a large
    plain text is scanned in two halves at once (see :data:`SPLIT_MIN_BYTES`).
    """

    def __init__(self, matcher: Matcher, config: ExtractConfig | None = None,
                 passwords: tuple[str, ...] = (), mode: str | None = None,
                 preload_formats: bool = True, inline_small: bool = False,
                 split_large: bool = False) -> None:
        self.matcher = matcher
        self.inline_small = inline_small
        self.split_large = split_large
        self.config = config or ExtractConfig()
        self.passwords = tuple(passwords)
        self.mode = mode or self.config.worker_mode
        if self.mode not in ("fork", "warm", "inline"):
            raise ValueError(f"unknown worker mode {self.mode!r}")
        if self.mode != "inline" and not hasattr(os, "fork"):
            self.mode = "inline"
        #: format libraries still to import before the first fork (not at construction: a
        #: crawl's first request need not wait for them)
        self._preload = preload_formats and self.mode != "inline"
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
        job: _Job = (doc.content, None, _doc_name(doc), pw)
        result, _ = self._run(job, lambda: doc.content[: 1 << 20])
        return Finding.of(doc, result)

    def scan_file(self, path: str | Path, url: str | None = None, source: str = "scan",
                  passwords: tuple[str, ...] = (), streams: bool = False) -> Finding:
        """Scan a local file; the worker reads it (see module doc). ``streams``: a named
        pipe (``scan <(cmd)``) is read here, bounded, instead of being refused. Raises
        OSError when the path cannot be opened at all (missing, permission); everything
        else is the finding's status."""
        name = str(path)
        url = name if url is None else url
        pw = tuple(dict.fromkeys((*passwords, *self.passwords)))
        limit = self.config.max_input_bytes
        try:
            f = localfile.inspect(path, limit, streams)
            if f is None:  # a pipe named on the command line
                fd = localfile.open_stream(path)
                try:
                    data, _ = localfile.read_stream(fd, limit)
                finally:
                    os.close(fd)
                doc = Document(url=url, source=source, content=data, filename=Path(name).name)
                return self.scan(doc, passwords)
        except localfile.NotRead as exc:
            return Finding(url=url, source=source, sha256=None, size=exc.size,
                           fetched_at=utcnow(), result=_not_read(name, exc),
                           filename=Path(name).name)
        small = self._scan_small(f, name, pw) if self.inline_small else None
        facts: FileFacts | None
        if small is not None:
            result, facts = small
        else:
            result, facts = self._run((None, f, name, pw), lambda: _head(f))
        if facts is None:  # the worker failed before saying: hash it here
            facts = (_file_sha256(f, limit), f.size)
        return Finding(url=url, source=source, sha256=facts[0], size=facts[1],
                       fetched_at=utcnow(), result=result, filename=Path(name).name)

    def close(self) -> None:
        with self._lock:
            self._close()

    def _scan_small(self, f: localfile.Regular, name: str, pw: tuple[str, ...]
                    ) -> tuple[ScanResult, FileFacts] | None:
        """A small plain file scanned here (see :data:`INLINE_MAX_BYTES`), or None when
        it is not one: the bytes checked are the bytes scanned and hashed."""
        if f.size > INLINE_MAX_BYTES:
            return None
        try:
            data = localfile.read_regular(f, INLINE_MAX_BYTES)
        except (localfile.NotRead, OSError):
            return None  # grew, replaced, unreadable: the worker reads it and says why
        if detect(data, name) not in _INLINE_KINDS or next(
                blob_candidates(data, self.config.blob_min_length), None) is not None:
            return None
        with self._lock:
            result = scan_inline(data, name, self.matcher, self.config, pw)
        return result, (hashlib.sha256(data).hexdigest(), len(data))

    # -- dispatch --------------------------------------------------------------------------

    def _run(self, job: _Job, head: Callable[[], bytes]
             ) -> tuple[ScanResult, FileFacts | None]:
        with self._lock:
            if self._preload:
                preload()
                self._preload = False
            if self.mode == "inline":
                return self._work(job)
            if self.mode == "fork":
                return self._scan_forked(job, head)
            return self._scan_warm(job, head)

    def _work(self, job: _Job) -> tuple[ScanResult, FileFacts | None]:
        """One job, in this process (the worker, or inline)."""
        content, f, name, pw = job
        if f is not None:
            return _scan_local(f, name, self.matcher, self.config, pw, self.split_large)
        assert content is not None
        return scan_inline(content, name, self.matcher, self.config, pw,
                           self.split_large), None

    def _close(self) -> None:
        if self._pid is not None:
            for fd in (self._to_worker, self._from_worker):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            # closing its input ends the worker's loop; kill if it does not go quickly
            deadline = time.monotonic() + 2
            self.last_exit = "vanished"
            exit_fd = _pidfd(self._pid)
            try:
                while time.monotonic() < deadline:
                    try:
                        pid, status = os.waitpid(self._pid, os.WNOHANG)
                    except ChildProcessError:
                        break
                    if pid:
                        self.last_exit = f"exited {os.waitstatus_to_exitcode(status)}"
                        break
                    _nap(exit_fd, deadline)
                else:
                    _kill(self._pid)
                    self.last_exit = "killed"
            finally:
                if exit_fd >= 0:
                    os.close(exit_fd)
            self._pid = self._to_worker = self._from_worker = None

    # -- fork per document -----------------------------------------------------------------

    def _hard_deadline(self) -> float:
        return time.monotonic() + self.config.time_limit + self.config.kill_grace

    def _scan_forked(self, job: _Job, head: Callable[[], bytes]
                     ) -> tuple[ScanResult, FileFacts | None]:
        r, w = os.pipe()
        deadline = self._hard_deadline()
        name = job[2]

        def body() -> None:  # the worker
            os.close(r)
            _limit_memory(self.config.worker_memory_bytes)
            try:
                result, facts = self._work(job)
            except MemoryError:
                result, facts = _died_result(name, b"", "out of memory (MemoryError)"), None
            _write_frame(w, _pack(result, facts))

        try:
            pid = _fork(body, {w})
        finally:
            os.close(w)
        try:
            return _unpack(_read_frame(r, deadline))
        except _Timeout:
            _kill(pid)
            pid = 0
            return _timeout_result(name, head(), self.config), None
        except (_Died, pickle.UnpicklingError, EOFError, TypeError, ValueError):
            how = _reap(pid)
            pid = 0
            return _died_result(name, head(), how), None
        finally:
            os.close(r)
            if pid:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)

    # -- warm worker -----------------------------------------------------------------------

    def _start_worker(self) -> None:
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()

        def body() -> None:  # the worker
            os.close(to_w)
            os.close(from_r)
            _limit_memory(self.config.worker_memory_bytes)
            self._serve(to_r, from_w)

        try:
            pid = _fork(body, {to_r, from_w})
        except BaseException:
            for fd in (to_r, to_w, from_r, from_w):
                os.close(fd)
            raise
        os.close(to_r)
        os.close(from_w)
        os.set_blocking(to_w, False)  # writes wait in select(), under the deadline
        self._pid, self._to_worker, self._from_worker = pid, to_w, from_r

    def _serve(self, inbox: int, outbox: int) -> None:
        while True:
            try:
                job = _read_frame(inbox, None)
            except _Died:
                return
            try:
                result, facts = self._work(job)
            except MemoryError:
                result = ScanResult(status="too_large",
                                    error=f"{_label(job[2])}: out of memory while scanning")
                facts = None
            del job
            _write_frame(outbox, _pack(result, facts))

    def _scan_warm(self, job: _Job, head: Callable[[], bytes]
                   ) -> tuple[ScanResult, FileFacts | None]:
        if self._pid is not None and self._served >= self.config.worker_max_documents:
            self._close()
        if self._pid is None:
            self._start_worker()
            self._served = 0
        self._served += 1
        assert self._to_worker is not None and self._from_worker is not None
        deadline = self._hard_deadline()
        name = job[2]
        try:
            try:
                _write_frame(self._to_worker, job, deadline)
            except BrokenPipeError:  # the idle worker died (OOM killer ...): start another
                self._discard(kill=False)
                self._start_worker()
                _write_frame(self._to_worker, job, deadline)
            return _unpack(_read_frame(self._from_worker, deadline))
        except _Timeout:
            self._discard(kill=True)
            return _timeout_result(name, head(), self.config), None
        except (_Died, BrokenPipeError, pickle.UnpicklingError, EOFError, TypeError,
                ValueError):
            how = self._discard(kill=False)
            return _died_result(name, head(), how), None

    def _discard(self, kill: bool) -> str:
        pid = self._pid
        for fd in (self._to_worker, self._from_worker):
            if fd is not None:
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


def _default_scanner(matcher: Matcher, config: ExtractConfig | None,
                     preload_formats: bool = True) -> DocumentScanner:
    global _default
    cfg = config or ExtractConfig()
    if _default is None or _default.matcher is not matcher or _default.config != cfg:
        if _default is not None:
            _default.close()
        _default = DocumentScanner(matcher, cfg, preload_formats=preload_formats)
    return _default


def scan_document(doc: Document, matcher: Matcher, config: ExtractConfig | None = None,
                  passwords: tuple[str, ...] = ()) -> Finding:
    """Extract and match one document under the per-document time limit.

    Uses a module-level :class:`DocumentScanner` (re-made when the matcher or
    config changes); callers scanning many documents may hold their own.
    """
    return _default_scanner(matcher, config).scan(doc, tuple(passwords))


def scan_file(path: str | Path, matcher: Matcher, config: ExtractConfig | None = None,
              passwords: tuple[str, ...] = (), url: str | None = None,
              streams: bool = False) -> Finding:
    """:meth:`DocumentScanner.scan_file` with the module-level scanner (which then does
    not import every format library up front: a one-off scan imports what it meets)."""
    return _default_scanner(matcher, config, preload_formats=False).scan_file(
        path, url=url, passwords=tuple(passwords), streams=streams)
