"""Candidate finding: where in a UTF-8 buffer identifier-shaped tokens are.

Two engines with identical results: hyperscan (when importable; one pass for
all kinds, plus short windows around full-width letters and digits, see
:class:`Finder`) and Python ``re`` (one bounded regex per kind). Hyperscan has no
look-arounds, so its expressions consume one non-alnum byte on each side and
the full-width neighbours are checked here; then, per kind, the longest token
per start wins and overlapping later tokens are dropped, which is what
``re.finditer`` with greedy patterns yields.

The buffer must start and end with a non-alnum byte (the scanner joins parts
with newlines and adds one at each end).
"""

from __future__ import annotations

import logging
import os
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from operator import itemgetter

import numpy as np
from numpy.typing import NDArray

from leaksentry.identifiers.kinds import Kind, fullwidth_alnum_after, fullwidth_alnum_before
from pipelines.match.hscache import DatabaseCache, patterns_hash
from pipelines.match.speedups import resolve as resolve_speedups

log = logging.getLogger(__name__)

try:  # pragma: no cover - depends on the platform
    import hyperscan

    HAVE_HYPERSCAN = True
except ImportError:  # pragma: no cover
    # absent: HAVE_HYPERSCAN is False and nothing below touches the module
    hyperscan = None  # type: ignore[assignment]
    HAVE_HYPERSCAN = False

Candidate = tuple[int, int, int]  # (kind index, start, end) in the buffer
#: every candidate of a buffer as three int64 arrays (kind index, start, end), by start
Candidates = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]
#: hyperscan's match callback: (expression id, start, end, flags, context)
Handler = Callable[[int, int, int, int, object], bool | None]
#: (full-width starts, windows) around full-width letters and digits, or None (see below)
Windows = tuple[list[int], list[tuple[int, int]]] | None

_DB_CACHE: dict[tuple[bytes, ...], hyperscan.Database] = {}
_DB_LOCK = threading.Lock()
_FLAGS = "HS_FLAG_SOM_LEFTMOST"


def _database(expressions: tuple[bytes, ...],
              cache: DatabaseCache | None = None) -> hyperscan.Database:
    """The compiled block-mode database of ``expressions``: once per process, and from
    the on-disk cache (see :mod:`.hscache`) when one is given."""
    with _DB_LOCK:
        db = _DB_CACHE.get(expressions)
        if db is None:
            flags = [getattr(hyperscan, _FLAGS)] * len(expressions)

            def compile_() -> hyperscan.Database:
                db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
                db.compile(expressions=list(expressions), ids=list(range(len(expressions))),
                           elements=len(expressions), flags=flags)
                return db

            if cache is None:
                db = compile_()
            else:
                digest = patterns_hash(expressions, flags, hyperscan.HS_MODE_BLOCK,
                                       getattr(hyperscan, "__version__", "?"))
                db = cache.get(digest, compile_, hyperscan.dumpb,
                               lambda b: hyperscan.loadb(b, hyperscan.HS_MODE_BLOCK))
            _DB_CACHE[expressions] = db
        return db


def _closed(buf: bytes, end: int) -> bool:
    """The token ends with a closing bracket ``)`` ``]`` (ASCII or full-width)."""
    last = buf[end - 1]
    return last in (0x29, 0x5D) or (last in (0x89, 0xBD)
                                    and buf[end - 3:end - 1] == b"\xef\xbc")


class Finder:
    """Finds candidates of every kind; ``engine`` is "auto", "hyperscan" or "re".

    With hyperscan and the built-in kinds, a buffer is scanned with the *narrow*
    patterns (ASCII letters and digits; ~3x faster than patterns that also spell out
    full-width ones), and the full patterns run only on short windows around the
    full-width letters and digits a cheap first pass finds. Reports from a window are
    kept only if they span such a character; together with the narrow pass they are
    the full patterns' reports over the whole buffer (a narrow report that the full
    patterns would have started earlier is always preceded by a full-width letter and
    dropped by the boundary check). The tests compare this with the `re` engine.

    ``speedups`` (default: when built) collects hyperscan's matches and resolves them
    into tokens in C instead of a Python callback and loop; results are identical.
    """

    def __init__(self, kinds: Sequence[Kind], engine: str = "auto",
                 speedups: bool | None = None, cache: DatabaseCache | None = None) -> None:
        self.kinds = list(kinds)
        self._cache = cache
        if engine == "auto":
            engine = "hyperscan" if HAVE_HYPERSCAN else "re"
        if engine == "hyperscan" and not HAVE_HYPERSCAN:
            raise RuntimeError("hyperscan is not installed")
        self.engine = engine
        self._hs_kinds: list[int] = []
        self._re_kinds: list[int] = list(range(len(self.kinds)))
        self._db: hyperscan.Database | None = None
        self._narrow_db: hyperscan.Database | None = None
        self._width = 0
        if engine == "hyperscan":
            self._compile([i for i, k in enumerate(self.kinds) if k.hs_ok])
        self._fast = resolve_speedups(speedups)
        if self._fast is not None and self._hs_kinds and len(self.kinds) < 256:
            self._kind_bytes = bytes(self._hs_kind_of)
            self._neg_bytes = bytes(self._hs_neg_adj)
        else:
            self._fast = None
        self._local = threading.local()

    def _compile(self, hs_kinds: list[int]) -> None:
        kinds = self.kinds
        exprs = [(i, expr, edge) for i in hs_kinds for expr, edge in kinds[i].hs_expressions]
        self._hs_kind_of = [i for i, _, _ in exprs]
        self._hs_neg_adj = [1 if edge else 0 for _, _, edge in exprs]
        try:
            self._db = _database(tuple(expr for _, expr, _ in exprs), self._cache)
        except hyperscan.error as exc:
            # one custom pattern hyperscan cannot compile: fall back to `re` for all
            log.warning("hyperscan cannot compile the patterns (%s); using re", exc)
            return
        self._hs_kinds = hs_kinds
        self._re_kinds = [i for i in range(len(kinds)) if i not in hs_kinds]
        narrow = [kinds[i].hs_narrow_expressions for i in hs_kinds]
        widths = [max_width(e) for _, e, _ in exprs]
        if all(n is not None for n in narrow) and widths and None not in widths:
            width = max(w for w in widths if w is not None)
            self._narrow_db = _database(tuple(e for n in narrow if n is not None for e, _ in n),
                                        self._cache)
            self._width = width

    @property
    def accelerated(self) -> bool:
        return self._fast is not None

    def _scratch(self, db: hyperscan.Database) -> hyperscan.Scratch:
        """Scratch space per database, thread and process (a forked child allocates its
        own)."""
        loc = self._local
        pid = os.getpid()
        if getattr(loc, "pid", None) != pid:
            loc.scratch = {}
            loc.collector = self._fast.Collector() if self._fast is not None else None
            loc.pid = pid
        scratch: hyperscan.Scratch | None = loc.scratch.get(id(db))
        if scratch is None:
            scratch = loc.scratch[id(db)] = hyperscan.Scratch(db)
        return scratch

    def find(self, buf: bytes) -> list[Candidate]:
        """Every candidate token, sorted by start."""
        k, s, e = self.find_arrays(buf)
        return list(zip(k.tolist(), s.tolist(), e.tolist(), strict=True))

    def find_arrays(self, buf: bytes) -> Candidates:
        """:meth:`find` as arrays: no Python object per candidate."""
        parts: list[Candidates] = []
        if self._hs_kinds:
            parts.append(self._find_hs_c(buf) if self._fast is not None
                         else _arrays(self._find_hs(buf)))
        for ki in self._re_kinds:
            parts.append(_arrays([(ki, m.start(), m.end())
                                  for m in self.kinds[ki].rx.finditer(buf)]))
        if len(parts) == 1:
            return parts[0]
        k, s, e = (np.concatenate(c) for c in zip(*parts, strict=True))
        order = np.argsort(s, kind="stable")  # equal starts keep kind order, as find() did
        return k[order], s[order], e[order]

    @staticmethod
    def _fw_limit(size: int) -> int:
        # bounds the list of full-width characters; whether windows pay is decided by how
        # much of the buffer they cover (a quarter at most)
        return max(16, size // 16)

    def _find_hs_c(self, buf: bytes) -> Candidates:
        assert self._db is not None  # only with the kinds hyperscan compiled
        self._scratch(self._db)  # makes this thread's collector too
        col = self._local.collector
        col.clear()
        try:
            self._scan_c(buf, col)
            k, s, e = col.tokens(buf, self._kind_bytes, self._neg_bytes)
        finally:
            col.clear()
        return (np.frombuffer(k, dtype=np.int64), np.frombuffer(s, dtype=np.int64),
                np.frombuffer(e, dtype=np.int64))

    def _scan_c(self, buf: bytes, col: Handler) -> None:
        """Reports into the C collector ``col`` (a hyperscan callback itself)."""
        self._scan(buf, col, self._fullwidth_windows_c)

    def _fullwidth_windows_c(self, buf: bytes, width: int, limit: int,
                             coverage: int) -> Windows:
        assert self._fast is not None  # only called with the speedups
        found = self._fast.fullwidth_windows(buf, width, limit, coverage)
        if found is None:
            return None
        return np.frombuffer(found[0], dtype=np.int64).tolist(), found[1]

    def _reports_py(self, buf: bytes) -> list[tuple[int, int, int]]:
        """:meth:`_scan_c` with Python callbacks."""
        hits: list[tuple[int, int, int]] = []
        add = hits.append

        def on_match(i: int, start: int, end: int, flags: int, ctx: object) -> None:
            add((i, start, end))

        self._scan(buf, on_match, fullwidth_windows)
        return hits

    def _scan(self, buf: bytes, handler: Handler,
              windows_of: Callable[[bytes, int, int, int], Windows]) -> None:
        """Every report of the full patterns to ``handler``: the narrow pass plus the
        windows around full-width letters and digits (found by ``windows_of``, the C or
        the Python :func:`fullwidth_windows`), or one full pass."""
        assert self._db is not None  # only with the kinds hyperscan compiled
        found = None
        if self._narrow_db is not None:
            found = windows_of(buf, self._width, self._fw_limit(len(buf)), len(buf) // 4)
        if found is None or self._narrow_db is None:  # no narrow patterns, dense full-width
            self._db.scan(buf, match_event_handler=handler, scratch=self._scratch(self._db))
            return
        fw, windows = found
        self._narrow_db.scan(buf, match_event_handler=handler,
                             scratch=self._scratch(self._narrow_db))
        if windows:
            for i, f, t in self._window_reports(buf, fw, windows):
                handler(i, f, t, 0, None)

    def _window_reports(self, buf: bytes, fw: list[int],
                        windows: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
        """The full patterns' reports that span a full-width letter or digit: the windows
        joined by newlines and scanned in one call; a report is kept only if it lies
        inside one window (mapped back to the buffer) and spans one of ``fw``."""
        joined = b"\n".join(buf[a:b] for a, b in windows)
        at = [0]  # start of each window in `joined`
        for a, b in windows[:-1]:
            at.append(at[-1] + (b - a) + 1)
        raw: list[tuple[int, int, int]] = []
        add = raw.append

        def on_match(i: int, start: int, end: int, flags: int, ctx: object) -> None:
            add((i, start, end))

        assert self._db is not None  # only with the kinds hyperscan compiled
        self._db.scan(joined, match_event_handler=on_match, scratch=self._scratch(self._db))
        out: list[tuple[int, int, int]] = []
        for i, f, t in raw:
            w = bisect_right(at, f) - 1
            a, b = windows[w]
            if t - at[w] > b - a:
                continue  # runs into the next window
            f, t = f - at[w] + a, t - at[w] + a
            j = bisect_left(fw, f)
            if j < len(fw) and fw[j] + 3 <= t:
                out.append((i, f, t))
        return out

    def _find_hs(self, buf: bytes) -> list[Candidate]:
        hits = self._reports_py(buf)
        if not hits:
            return []
        kind_of, neg_adj = self._hs_kind_of, self._hs_neg_adj
        # token = (start + 1, end - 1 if the expression consumed a trailing boundary byte),
        # as (kind, start, -end) so that a plain sort puts the longest per start first
        tokens = [(kind_of[i], f + 1, neg_adj[i] - t) for i, f, t in hits]
        tokens.sort()
        out: list[Candidate] = []
        last_kind, last_end, last_start = -1, -1, -1
        for i, s, neg_e in tokens:
            e = -neg_e
            if i != last_kind:
                last_kind, last_end, last_start = i, -1, -1
            if s == last_start or s < last_end:
                continue  # a shorter token at the same start, or overlapping a kept one
            if buf[s - 1] >= 0x80 and fullwidth_alnum_before(buf, s):
                continue
            if buf[e] == 0xEF and fullwidth_alnum_after(buf, e) and not _closed(buf, e):
                continue
            out.append((i, s, e))
            last_start, last_end = s, e
        out.sort(key=itemgetter(1))  # by start; kinds already in order for equal starts
        return out


def fullwidth_alnum(buf: bytes) -> NDArray[np.int64]:
    """Starts of the full-width letters and digits in a UTF-8 buffer (numpy; the C
    twin is inside the speedups' ``fullwidth_windows``). A continuation byte is never
    0xEF, so every match is a real character start."""
    a = np.frombuffer(buf, dtype=np.uint8)
    lead = np.flatnonzero(a[:-2] == 0xEF) if len(a) > 2 else np.zeros(0, dtype=np.intp)
    b1, b2 = a[lead + 1], a[lead + 2]
    ok = ((b1 == 0xBC) & (((b2 >= 0x90) & (b2 <= 0x99)) | ((b2 >= 0xA1) & (b2 <= 0xBA)))) | (
        (b1 == 0xBD) & (b2 >= 0x81) & (b2 <= 0x9A))
    starts: NDArray[np.int64] = lead[ok].astype(np.int64)
    return starts


def fullwidth_windows(buf: bytes, width: int, limit: int,
                      coverage: int) -> Windows:
    """(starts of the full-width letters and digits, merged byte ranges ``width`` around
    each) -- the ranges hold every full-pattern match spanning such a character; None
    when there are more than ``limit`` characters or the ranges cover more than
    ``coverage`` bytes (one full pass is then cheaper). The C twin has the same name."""
    fw = fullwidth_alnum(buf)
    if len(fw) > limit:
        return None
    if not len(fw):
        return [], []
    a = np.maximum(fw - width, 0)
    b = np.minimum(fw + 3 + width, len(buf))
    new = np.flatnonzero(a[1:] > b[:-1]) + 1  # a window that does not touch the last
    first = np.concatenate(([0], new))
    last = np.concatenate((new - 1, [len(fw) - 1]))
    lo, hi = a[first], b[last]
    if int((hi - lo).sum()) > coverage:
        return None
    return fw.tolist(), list(zip(lo.tolist(), hi.tolist(), strict=True))


def max_width(expression: bytes) -> int | None:
    """The longest match of a (hyperscan-compatible) expression in bytes, or None when it
    is unbounded or cannot be worked out."""
    try:
        # the stdlib's own width analysis (a private module typeshed does not list)
        from re import _parser  # type: ignore[attr-defined]

        width = _parser.parse(expression).getwidth()[1]
    except Exception:  # a construct `re` does not know, or another Python
        return None
    return width if width < 4096 else None


def _arrays(cands: list[Candidate]) -> Candidates:
    if not cands:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    a = np.array(cands, dtype=np.int64)
    return a[:, 0].copy(), a[:, 1].copy(), a[:, 2].copy()
