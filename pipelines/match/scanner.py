"""The scanner: text parts in, a :class:`ScanResult` out, with no plaintext kept.

Parts (str, or UTF-8 bytes as plain text arrives) are joined into buffers of
``batch_bytes`` (one table row per part is common: 56,000 parts must not mean
56,000 engine calls). Each buffer is scanned once; offsets are mapped back to
parts with numpy ``searchsorted``. Per candidate the unavoidable work is
canonical form, checksum, one HMAC and one lookup: in C when the optional
extension is built (``_speedups.c``), else in Python with the same results;
after that, Python work is per distinct identifier found, not per candidate.
"""

from __future__ import annotations

import gc
import re
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

import numpy as np

from leaksentry import redaction
from leaksentry.config.matching import MatchingConfig
from leaksentry.errors import ConfigError
from leaksentry.identifiers.kinds import Kind, build_kinds
from leaksentry.redaction import mask_b, redact_label
from pipelines.match.digest import Digester
from pipelines.match.exposed import MAX_LABEL, Categories, Exposure, Runs
from pipelines.match.finder import Candidate, Finder
from pipelines.match.fpfile import RECORD_MASK, FingerprintSet
from pipelines.match.hscache import DatabaseCache
from pipelines.match.keys import read_key
from pipelines.match.severity import assess
from pipelines.match.speedups import resolve as resolve_speedups
from pipelines.model import CELL_SEP, Match, ScanResult, TextPart

_SEP = b"\n"
_CELL = CELL_SEP.encode()
_NATURAL = re.compile(r"(\d+)")


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(65 + rem) + out
    return out


# At most this many parts per batch: a CSV's 8 MB is ~100,000 rows and ~200,000
# candidates, whose per-row and per-candidate bookkeeping (~500 bytes each) would cost
# ~100 MB per batch; 16,384 rows keep it near 15 MB and cost no throughput.
_BATCH_PARTS = 16_384
_Meta = tuple[str | None, int | None]  # a part's (location, row), all a batch keeps of it
# per candidate: (valid, digest, found, first index >= digest) + the found ones' canonicals
_Evaluated = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[bytes]]

_COLUMNS = [column_letter(i) for i in range(702)]  # A .. ZZ


def natural_key(ref: str) -> tuple[int, int | tuple[int | str, ...], str]:
    if ref.isdigit():
        return (0, int(ref), ref)
    return (1, tuple(int(p) if p.isdigit() else p for p in _NATURAL.split(ref)), ref)


_MATCH_FIELDS = ("kind", "masked", "record_ref", "count", "where", "digest")
_MATCH_FAST = (tuple(f.name for f in fields(Match)) == _MATCH_FIELDS
               and not hasattr(Match, "__post_init__") and hasattr(Match, "__slots__"))


def _build_matches(*columns: Iterable[Any]) -> list[Match]:
    """``list(map(Match, *columns))``. A frozen dataclass's ``__init__`` sets each field
    through ``object.__setattr__``; for a sheet's 112,000 matches, filling the slots a
    column at a time with their descriptors costs half as much and gives equal objects.
    Falls back to the constructor if Match ever gains fields or a ``__post_init__``."""
    if not _MATCH_FAST:
        return list(map(Match, *columns))
    cols = [list(c) for c in columns]
    out = list(map(object.__new__, repeat(Match, len(cols[0]))))
    for name, col in zip(_MATCH_FIELDS, cols, strict=True):
        deque(map(Match.__dict__[name].__set__, out, col), 0)
    return out


def _hex64(values: Iterable[int]) -> list[str]:
    """``f"{v:016x}"`` of each value, formatted by one ``bytes.hex`` (str.format costs
    ~0.7 us per value, a measurable share of a scan with many matches)."""
    h = np.fromiter(values, dtype=np.uint64).astype(">u8").tobytes().hex()
    return [h[i:i + 16] for i in range(0, len(h), 16)]


def _first_occurrences(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(values, return_index=True, return_counts=True)`` by one stable sort:
    numpy 2's hash-based unique costs ~40 us per call even for a hundred values."""
    if not len(values):
        empty = np.zeros(0, dtype=np.int64)
        return values[:0], empty, empty
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    new = np.empty(len(ordered), dtype=bool)
    new[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    at = np.flatnonzero(new)
    counts = np.diff(np.append(at, len(ordered)))
    return ordered[at], order[at], counts


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic collector paused while a batch or the result is built.

    A big sheet makes ~100,000 entries and Match objects, all alive until the end, and
    the collector would traverse them again and again (a quarter of the scan's CPU)
    while nothing here makes a reference cycle. Only the matcher's own work runs
    paused: the caller's part generator (the extractor) runs with the collector on.
    Restored only by the call that paused it (nested or concurrent scans are safe)."""
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _natural_sort(refs: list[str]) -> None:
    """``refs.sort(key=natural_key)``; all-digit references (the usual register row
    numbers) sort by two C-level passes instead of a Python key per item."""
    if all(map(str.isdigit, refs)):
        try:
            refs.sort()
            refs.sort(key=int)  # stable: equal numbers stay in string order, as natural_key
            return
        except ValueError:  # a non-ASCII digit int() cannot read
            pass
    refs.sort(key=natural_key)


@dataclass(slots=True)
class _State:
    parts: int = 0
    # digest -> [kind index, masked, record, count, first where, digest]
    seen: dict[int, list[Any]] = field(default_factory=dict)
    records: set[int] = field(default_factory=set)
    record_level: set[int] = field(default_factory=set)
    unmatched: dict[str, set[int]] = field(default_factory=dict)
    snippets: list[str] = field(default_factory=list)
    exposure: Exposure | None = None


class Matcher:
    """Holds the key, the memory-mapped fingerprints and the compiled kinds.

    Cheap to load (the fingerprint file is mapped, not read into objects) and
    usable in a child process after ``os.fork()``.
    """

    def __init__(self, key: bytes, fingerprints: FingerprintSet,
                 config: MatchingConfig | None = None, engine: str = "auto",
                 speedups: bool | None = None) -> None:
        self.config = config or MatchingConfig()
        self.fingerprints = fingerprints
        self.kinds: list[Kind] = build_kinds(self.config)
        # what this process scans for is what its outputs must mask (configured kinds)
        redaction.configure(self.config)
        # compiled patterns cached next to the fingerprint file (keyed by their hash)
        cache = DatabaseCache(fingerprints.path, key) if fingerprints.path else None
        self.finder = Finder(self.kinds, engine, speedups, cache)
        self._digester = Digester(key)
        fast = self._fast = resolve_speedups(speedups)
        self._evaluator = None if fast is None else fast.Evaluator(
            key, [(k.prefix, k.upper, k.delete, k.checksum) for k in self.kinds])
        self._checked = [k.name for k in self.kinds if k.has_checksum]
        self._categories = Categories(self.config.categories.additions())

    @property
    def engine(self) -> str:
        return self.finder.engine

    @property
    def accelerated(self) -> bool:
        """The C path is in use (candidates resolved and evaluated without Python loops)."""
        return self._evaluator is not None

    @classmethod
    def load(cls, key_path: Path | str, fingerprints_path: Path | str,
             config: MatchingConfig | None = None, engine: str = "auto",
             speedups: bool | None = None,
             verify: bool | Literal["background"] = True) -> Matcher:
        """``verify``: see :class:`~.fpfile.FingerprintSet`."""
        key = read_key(key_path)
        return cls(key, FingerprintSet(fingerprints_path, key, verify), config, engine,
                   speedups)

    @classmethod
    def from_config(cls, cfg: MatchingConfig) -> Matcher:
        if cfg.key is None:
            raise ConfigError("matching.key: not set (path of the key file made by keygen)")
        if cfg.fingerprints is None:
            raise ConfigError("matching.fingerprints: not set (path of the fingerprint file)")
        return cls.load(cfg.key, cfg.fingerprints, cfg)

    # -- scanning -------------------------------------------------------------------------------

    def scan(self, parts: Iterable[TextPart]) -> ScanResult:
        state = self.start()
        self.feed(state, parts)
        return self.finish(state)

    # A document can also be scanned in pieces, each piece's parts fed to a state of its
    # own (in another process, say), the states merged in document order, then finished:
    # the same result as one scan, because nothing a batch computes reaches past a part.

    def start(self) -> _State:
        """A new document's state."""
        return _State(unmatched={name: set() for name in self._checked},
                      exposure=Exposure(self._categories, self.redact_labels))

    def finish(self, state: _State) -> ScanResult:
        """The document's result from everything fed to ``state``."""
        with _gc_paused():
            return self._result(state)

    @staticmethod
    def detach(state: _State) -> tuple[_State, tuple[bool, bool]]:
        """A piece's state made ready to send (its label collector stays behind), with
        what :meth:`merge` needs to know of it: (looked at nothing, met a table)."""
        exposure = state.exposure
        assert exposure is not None
        state.exposure = None
        return state, (exposure.untouched, exposure.has_tables)

    def merge(self, state: _State, later: _State, later_labels: tuple[bool, bool]) -> bool:
        """Add the piece that follows ``state``'s in the document (detached); False, with
        ``state`` unchanged, when the result would not be the one of a single scan: the
        later piece looked at labels around identifiers that a single scan would still
        have looked at (it stops after :data:`~.exposed.TEXT_SAMPLES` places), then the
        caller feeds that piece's parts to ``state`` itself."""
        untouched, tables = later_labels
        exposure = state.exposure
        if not untouched and (tables or exposure is None or exposure.sampling):
            return False
        state.parts += later.parts
        seen = state.seen
        for digest, entry in later.seen.items():  # first place, first kept; counts add up
            mine = seen.get(digest)
            if mine is None:
                seen[digest] = entry
            else:
                mine[3] += entry[3]
        state.records |= later.records
        state.record_level |= later.record_level
        for kind, digests in later.unmatched.items():
            state.unmatched[kind] |= digests
        room = self.config.snippets - len(state.snippets)  # a piece's snippets come in order
        if room > 0:
            state.snippets.extend(later.snippets[:room])
        return True

    def feed(self, state: _State, parts: Iterable[TextPart]) -> None:
        """Scan ``parts`` (the next ones of the document) into ``state``."""
        limit = self.config.batch_bytes
        # a batch's parts as bytes, joined once when the batch is full (one copy of each
        # byte; a growing buffer copied it twice); no TextPart is kept, only (location, row)
        pieces: list[bytes] = []
        starts: list[int] = [1]  # offset of each part's first byte, then the end sentinel
        metas: list[_Meta] = []
        # where the table header changes: one entry per table (or text run), not per row
        runs: Runs = []
        header: object = runs  # never a part's header: the first part starts a run
        for part in parts:
            state.parts += 1
            text = part.text
            data = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
            if metas and (starts[-1] - 1 + len(data) > limit or len(metas) == _BATCH_PARTS):
                with _gc_paused():
                    self._scan_batch(self._batch(pieces), starts, metas, runs, state)
                pieces = []
                starts, metas, runs = [1], [], []
                header = runs
            if part.header is not header:
                header = part.header
                runs.append((len(metas), part.header))
            pieces.append(data)
            starts.append(starts[-1] + len(data) + 1)
            metas.append((part.location, part.row))
        if metas:
            data = self._batch(pieces)
            del pieces
            with _gc_paused():
                self._scan_batch(data, starts, metas, runs, state)

    @staticmethod
    def _batch(pieces: list[bytes]) -> bytes:
        """The batch as the finder wants it: parts joined by newlines, one at each end
        (the pieces are let go)."""
        pieces.insert(0, b"")
        pieces.append(b"")
        data = _SEP.join(pieces)
        pieces.clear()
        return data

    def _canonical(self, buf: bytes, cands: list[Candidate]) -> tuple[list[bytes], np.ndarray]:
        """Every candidate's canonical form and whether it passes its kind's checksum, in
        candidate order, a kind at a time (one C-level pass, one numpy check per kind)."""
        kinds = self.kinds
        toks = [buf[s:e] for _, s, e in cands]
        kind_of = [c[0] for c in cands]
        present = set(kind_of)
        if len(present) == 1:
            kind = kinds[kind_of[0]]
            canon = kind.canonical_many(toks)
            return canon, kind.valid_many(canon)
        out: list[bytes] = [b""] * len(toks)
        ok = np.zeros(len(toks), dtype=bool)
        for ki in present:
            idx = [i for i, k in enumerate(kind_of) if k == ki]
            canon = kinds[ki].canonical_many([toks[i] for i in idx])
            ok[idx] = kinds[ki].valid_many(canon)
            for i, c in zip(idx, canon, strict=True):
                out[i] = c
        return out, ok

    def _evaluate(self, buf: bytes, ck: np.ndarray, cs: np.ndarray,
                  ce: np.ndarray) -> _Evaluated:
        """Per candidate: passes its checksum, 64-bit keyed digest, in the fingerprints,
        index of the first fingerprint entry >= the digest; and the canonical forms of
        the found ones (for their masks). In C when built; tokens the C path does not
        canonicalise itself (other non-ASCII text) go the Python way."""
        fast = self._evaluator
        if fast is None:
            return self._evaluate_py(buf, ck, cs, ce)
        status, q, idx, canon = fast.evaluate(buf, ck, cs, ce, self.fingerprints.digests)
        st = np.frombuffer(status, dtype=np.uint8)
        q = np.frombuffer(q, dtype=np.uint64)
        idx = np.frombuffer(idx, dtype=np.int64)
        valid, found = (st & 1).astype(bool), (st & 2).astype(bool)
        py = np.flatnonzero(st == 4)
        if len(py):
            valid, found, q, idx = valid.copy(), found.copy(), q.copy(), idx.copy()
            v2, q2, f2, i2, c2 = self._evaluate_py(buf, ck[py], cs[py], ce[py])
            valid[py], q[py], found[py], idx[py] = v2, q2, f2, i2
            if c2:  # merge the found ones' canonical forms in candidate order
                by_index = dict(zip(np.flatnonzero(st & 2).tolist(), canon, strict=True))
                by_index.update(zip(py[f2].tolist(), c2, strict=True))
                canon = [by_index[i] for i in sorted(by_index)]
        return valid, q, found, idx, canon

    def _evaluate_py(self, buf: bytes, ck: np.ndarray, cs: np.ndarray,
                     ce: np.ndarray) -> _Evaluated:
        """:meth:`_evaluate` in Python: the canonical forms a kind at a time, the HMACs
        from copied hashlib states, the lookup vectorised."""
        n = len(ck)
        cands = list(zip(ck.tolist(), cs.tolist(), ce.tolist(), strict=True))
        canon, ok = self._canonical(buf, cands)
        q = np.zeros(n, dtype=np.uint64)
        found = np.zeros(n, dtype=bool)
        idx = np.zeros(n, dtype=np.int64)
        keep = np.flatnonzero(ok).tolist()
        if keep:
            prefixes = [k.prefix for k in self.kinds]
            msgs = [prefixes[cands[i][0]] + canon[i] for i in keep]
            out = self._digester.many(msgs)
            # the first 8 bytes of each 32-byte HMAC, big-endian
            q[keep] = np.frombuffer(b"".join(out), dtype=">u8")[::4]
            f, ix = self.fingerprints.lookup(q[keep])
            found[keep], idx[keep] = f, ix
        return ok, q, found, idx, [canon[i] for i in np.flatnonzero(found).tolist()]

    def _scan_batch(self, buf: bytes, starts: list[int], metas: list[_Meta], runs: Runs,
                    state: _State) -> None:
        ck, cs, ce = self.finder.find_arrays(buf)
        if not len(ck):
            return
        valid, q, found, idx, canon = self._evaluate(buf, ck, cs, ce)
        keep = np.flatnonzero(valid)
        if not len(keep):
            return
        kinds = self.kinds
        vk, vs, ve = ck[keep], cs[keep], ce[keep]
        q, found, idx = q[keep], found[keep], idx[keep]
        fp = self.fingerprints
        part_of = np.searchsorted(np.asarray(starts, dtype=np.int64), vs, "right") - 1
        if state.exposure is not None:
            state.exposure.add_batch(buf, starts, runs, len(metas), part_of, vs, ve)
        n = len(fp.digests)
        hit_idx = np.flatnonzero(found)
        # register records of the hits only (other rows of `records` are never read)
        records = np.zeros(len(q), dtype=np.int64)
        if n and len(hit_idx):
            records[hit_idx] = fp.meta[idx[hit_idx]].astype(np.int64) & RECORD_MASK
        miss = ~found
        if miss.any():  # valid identifiers that are not in the register: distinct, per kind
            for ki, kind in enumerate(kinds):
                um = state.unmatched.get(kind.name)
                if um is not None:
                    sel = miss & (vk == ki)
                    if sel.any():
                        um.update(q[sel].tolist())
        if len(hit_idx):
            self._aggregate(buf, starts, metas, vk, vs, canon, q, hit_idx, records, part_of,
                            state)
            if n:
                # identifiers held by several register records (a duplicated register row)
                hi = idx[hit_idx]
                nxt = np.minimum(hi + 1, n - 1)
                dup = (hi + 1 < n) & (fp.digests[nxt] == q[hit_idx])
                for ci in hit_idx[dup].tolist():
                    state.records.update(fp.records_at(int(idx[ci]), int(q[ci])))
        if len(hit_idx) > 1:
            self._record_level(buf, metas, vs, ve, hit_idx, part_of, records, q, state)
        if len(state.snippets) < self.config.snippets:
            self._snippets(buf, starts, ck, cs, ce, vs, ve, hit_idx.tolist(), state)

    def _aggregate(self, buf: bytes, starts: list[int], metas: list[_Meta],
                   vk: np.ndarray, vs: np.ndarray, canon: list[bytes], q: np.ndarray,
                   hit_idx: np.ndarray, records: np.ndarray, part_of: np.ndarray,
                   state: _State) -> None:
        """One entry per distinct identifier: count, first place, mask; no Python work
        per repeated occurrence. ``canon``: the hits' canonical forms, as ``hit_idx``."""
        uniq, first, counts = _first_occurrences(q[hit_idx])
        order = np.argsort(first, kind="stable")  # document order of first occurrences
        first_c = hit_idx[first[order]]
        seen = state.seen
        kinds = self.kinds
        where = self._where
        lines = [-1, 0, 0]
        count = buf.count
        columns = _COLUMNS
        parts_l = part_of[first_c].tolist()
        ats, kis = vs[first_c], vk[first_c].tolist()
        canons = map(canon.__getitem__, np.searchsorted(hit_idx, first_c).tolist())
        line_of: list[int] | None = None
        if len(parts_l) > 32 and any(metas[pi][1] is None for pi in parts_l):
            # many text places: every line number at once instead of a bytes.count each
            sts = np.asarray(starts, dtype=np.int64)[part_of[first_c]]
            line_of = (self._newlines_before(buf, ats)
                       - self._newlines_before(buf, sts) + 1).tolist()
        for j, (dg, at, cn, ki, cnt, rec, pi) in enumerate(zip(
                uniq[order].tolist(), ats.tolist(), canons, kis, counts[order].tolist(),
                records[first_c].tolist(), parts_l, strict=True)):
            entry = seen.get(dg)
            if entry is not None:
                entry[3] += cnt
                continue
            location, row = metas[pi]
            if row is not None and location:  # the common table case, inlined
                n = count(_CELL, starts[pi], at)
                place = f"{location}!{columns[n] if n < 702 else column_letter(n)}{row}"
            elif row is None and line_of is not None:
                line = line_of[j]
                place = f"{location}:line {line}" if location else f"line {line}"
            else:
                place = where(buf, starts, metas, pi, at, lines)
            seen[dg] = [ki, mask_b(kinds[ki].name, cn), rec, cnt, place, dg]
        state.records.update(records[hit_idx].tolist())

    def _newlines_before(self, buf: bytes, positions: np.ndarray) -> np.ndarray:
        """How many newlines precede each (ascending) position."""
        fast = self._fast
        if fast is not None:
            pos = np.ascontiguousarray(positions, dtype=np.int64)
            return np.frombuffer(fast.newlines_before(buf, pos), dtype=np.int64)
        nl = np.flatnonzero(np.frombuffer(buf, dtype=np.uint8) == 10)
        return np.searchsorted(nl, positions)

    @staticmethod
    def _where(buf: bytes, starts: list[int], metas: list[_Meta], pi: int, at: int,
               lines: list[int]) -> str:
        """``Sheet1!C2`` for a table cell, ``name:line N`` for text. ``lines`` caches
        (part, offset, line) so that counting newlines stays linear in a big part."""
        location, row = metas[pi]
        if row is not None:
            n = buf.count(_CELL, starts[pi], at)
            col = _COLUMNS[n] if n < len(_COLUMNS) else column_letter(n)
            return f"{location}!{col}{row}" if location else f"{col}{row}"
        if lines[0] == pi and lines[1] <= at:
            line = lines[2] + buf.count(b"\n", lines[1], at)
        else:
            line = buf.count(b"\n", starts[pi], at) + 1
        lines[:] = [pi, at, line]
        return f"{location}:line {line}" if location else f"line {line}"

    def _record_level(self, buf: bytes, metas: list[_Meta], vs: np.ndarray, ve: np.ndarray,
                      hit_idx: np.ndarray, part_of: np.ndarray, records: np.ndarray,
                      q: np.ndarray, state: _State) -> None:
        """Two different identifiers of one record in one table row, or within the window
        in text. Sorted by (part, record, position), such pairs are neighbours."""
        pos = vs[hit_idx]
        p, r, d = part_of[hit_idx], records[hit_idx], q[hit_idx]
        o = np.lexsort((pos, r, p))
        p, r, d, o_idx = p[o], r[o], d[o], hit_idx[o]
        pairs = np.flatnonzero((p[1:] == p[:-1]) & (r[1:] == r[:-1]) & (d[1:] != d[:-1]))
        if not len(pairs):
            return
        is_row = np.fromiter((metas[i][1] is not None for i in p[pairs].tolist()), dtype=bool,
                             count=len(pairs))
        state.record_level.update(r[pairs[is_row]].tolist())
        window = self.config.window
        for j in pairs[~is_row].tolist():
            rec = int(r[j])
            if rec in state.record_level:
                continue
            gap = buf[int(ve[o_idx[j]]):int(vs[o_idx[j + 1]])]
            if len(gap) <= window or len(gap.decode("utf-8", "ignore")) <= window:
                state.record_level.add(rec)

    def _snippets(self, buf: bytes, starts: list[int], ck: np.ndarray, cs: np.ndarray,
                  ce: np.ndarray, vs: np.ndarray, ve: np.ndarray, around: list[int],
                  state: _State) -> None:
        """Short context around the first matches, every identifier-shaped token masked
        (found or not, valid or not), then any remaining run of 4+ digits starred."""
        if not around:
            return
        ctx = self.config.snippet_chars
        kinds = self.kinds
        cand_starts = cs.tolist()  # sorted: the finder returns them in order
        cand_ends, cand_kinds = ce.tolist(), ck.tolist()
        ncand = len(cand_starts)
        covered = -1
        for i in around:
            if len(state.snippets) >= self.config.snippets:
                break
            s, e = int(vs[i]), int(ve[i])
            if s < covered:
                continue  # already shown in the previous snippet
            pi = bisect_right(starts, s) - 1
            lo = max(starts[pi], s - 4 * ctx)
            hi = min(starts[pi + 1] - 1, e + 4 * ctx)
            covered = min(hi, e + ctx)
            j = max(0, bisect_right(cand_starts, lo) - 1)
            if j < ncand and cand_starts[j] < lo < cand_ends[j]:
                lo = cand_starts[j]  # a token straddling the window start is shown masked
            out: list[str] = []
            cur = lo
            focus = (0, 0)
            while j < ncand and cand_starts[j] < hi:
                ki, ss, se = cand_kinds[j], cand_starts[j], cand_ends[j]
                j += 1
                if se <= lo or ss < cur:
                    continue
                kind = kinds[ki]
                masked = mask_b(kind.name, kind.canonical_b(buf[ss:se]))
                out.append(buf[cur:ss].decode("utf-8", "ignore"))
                if ss == s:
                    focus = (sum(len(x) for x in out), len(masked))
                out.append(masked)
                cur = se
            out.append(buf[cur:hi].decode("utf-8", "ignore"))
            text = "".join(out)
            a = max(0, focus[0] - ctx)
            b = focus[0] + focus[1] + ctx
            text = text[a:b].replace(CELL_SEP, " | ").replace("\r", " ").replace("\n", " ")
            text = redact_label(text, 1 << 16) or ""
            if text:
                state.snippets.append(text)

    def _result(self, state: _State) -> ScanResult:
        fp = self.fingerprints
        recs = sorted(state.records)
        refs = dict(zip(recs, fp.refs(recs), strict=True))
        entries = sorted(state.seen.values(), key=itemgetter(2, 0))  # register order, kind
        state.seen = {}
        names = [k.name for k in self.kinds]
        if entries:  # column-wise into map(): 112,000 Matches are a measurable cost
            ki, masked, rec, count, where, dg = zip(*entries, strict=True)
            del entries  # the per-identifier lists go before the Matches are made
            matches = _build_matches(map(names.__getitem__, ki), masked,
                                     map(refs.__getitem__, rec), count, where, _hex64(dg))
        else:
            matches = []
        unmatched = {k: len(v) for k, v in state.unmatched.items()}
        severity, risk = assess(len(refs), len(state.record_level),
                                max(unmatched.values(), default=0), self.config.severity)
        fields_: list[str] = []
        categories: list[str] = []
        if state.exposure is not None and (refs or severity != "none"):  # a hit
            fields_, categories = state.exposure.result(identifiers=True)
        distinct = list(dict.fromkeys(refs.values()))
        if fp.ref_table:  # row numbers are already in order
            _natural_sort(distinct)
        level = [refs[r] for r in sorted(state.record_level)]
        if fp.ref_table:
            level = list(set(level))
            _natural_sort(level)
        return ScanResult(
            severity=severity,
            risk_score=risk,
            matched_records=len(distinct),
            record_refs=distinct,
            record_level_refs=level,
            matches=matches,
            unmatched_valid=unmatched,
            parts=state.parts,
            snippets=state.snippets,
            exposed_fields=fields_,
            exposed_categories=categories,
        )

    @staticmethod
    def redact_labels(labels: list[str]) -> list[str]:
        """Labels (stranger-controlled: table headers, SQL column names) made safe to store
        by the redaction policy: one line of at most 64 characters, identifiers masked,
        any other run of 4+ digits starred."""
        return [redact_label(x, MAX_LABEL) or "" for x in labels]
