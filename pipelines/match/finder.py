"""Candidate finding: where in a UTF-8 buffer identifier-shaped tokens are.

Two engines with identical results: hyperscan (when importable; one pass for
all kinds) and Python ``re`` (one bounded regex per kind). Hyperscan has no
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
from collections.abc import Sequence
from operator import itemgetter

from pipelines.match.kinds import Kind, fullwidth_alnum_after, fullwidth_alnum_before

log = logging.getLogger(__name__)

try:  # pragma: no cover - depends on the platform
    import hyperscan

    HAVE_HYPERSCAN = True
except ImportError:  # pragma: no cover
    hyperscan = None
    HAVE_HYPERSCAN = False

Candidate = tuple[int, int, int]  # (kind index, start, end) in the buffer

_DB_CACHE: dict[tuple[bytes, ...], object] = {}
_DB_LOCK = threading.Lock()


def _database(expressions: tuple[bytes, ...]):  # -> hyperscan.Database
    with _DB_LOCK:
        db = _DB_CACHE.get(expressions)
        if db is None:
            db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            db.compile(expressions=list(expressions), ids=list(range(len(expressions))),
                       elements=len(expressions),
                       flags=[hyperscan.HS_FLAG_SOM_LEFTMOST] * len(expressions))
            _DB_CACHE[expressions] = db
        return db


def _closed(buf: bytes, end: int) -> bool:
    """The token ends with a closing bracket (ASCII or full-width)."""
    return buf[end - 1] == 0x29 or (buf[end - 1] == 0x89 and buf[end - 3:end] == b"\xef\xbc\x89")


class Finder:
    """Finds candidates of every kind; ``engine`` is "auto", "hyperscan" or "re"."""

    def __init__(self, kinds: Sequence[Kind], engine: str = "auto") -> None:
        self.kinds = list(kinds)
        if engine == "auto":
            engine = "hyperscan" if HAVE_HYPERSCAN else "re"
        if engine == "hyperscan" and not HAVE_HYPERSCAN:
            raise RuntimeError("hyperscan is not installed")
        self.engine = engine
        self._hs_kinds: list[int] = []
        self._hs_exprs: list[tuple[int, bool]] = []  # expression id -> (kind, trailing edge)
        self._re_kinds: list[int] = list(range(len(self.kinds)))
        self._db = None
        if engine == "hyperscan":
            hs_kinds = [i for i, k in enumerate(self.kinds) if k.hs_ok]
            exprs = [(i, expr, edge) for i in hs_kinds
                     for expr, edge in self.kinds[i].hs_expressions]
            self._hs_exprs = [(i, edge) for i, _, edge in exprs]
            self._hs_kind_of = [i for i, _ in self._hs_exprs]
            self._hs_neg_adj = [1 if edge else 0 for _, edge in self._hs_exprs]
            try:
                self._db = _database(tuple(expr for _, expr, _ in exprs))
            except hyperscan.error as exc:
                # one custom pattern hyperscan cannot compile: fall back to `re` for all
                log.warning("hyperscan cannot compile the patterns (%s); using re", exc)
                hs_kinds = []
            self._hs_kinds = hs_kinds
            self._re_kinds = [i for i in range(len(self.kinds)) if i not in hs_kinds]
        self._local = threading.local()

    def _scratch(self):
        """Scratch space per thread and per process (a forked child allocates its own)."""
        loc = self._local
        pid = os.getpid()
        if getattr(loc, "pid", None) != pid:
            loc.scratch = hyperscan.Scratch(self._db)
            loc.pid = pid
        return loc.scratch

    def find(self, buf: bytes) -> list[Candidate]:
        """Every candidate token, sorted by start."""
        out: list[Candidate] = []
        if self._hs_kinds:
            out.extend(self._find_hs(buf))
        for ki in self._re_kinds:
            out.extend((ki, m.start(), m.end()) for m in self.kinds[ki].rx.finditer(buf))
        if len(self.kinds) > 1:
            out.sort(key=itemgetter(1))
        return out

    def _find_hs(self, buf: bytes) -> list[Candidate]:
        hits: list[tuple[int, int, int]] = []
        add = hits.append

        def on_match(i: int, start: int, end: int, flags: int, ctx: object) -> None:
            add((i, start, end))

        self._db.scan(buf, match_event_handler=on_match, scratch=self._scratch())
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
        return out
