"""The scanner: text parts in, a :class:`ScanResult` out, with no plaintext kept.

Parts are encoded to UTF-8 and joined into buffers of ``batch_bytes``
(one table row per part is common: 56,000 parts must not mean 56,000 engine
calls). Each buffer is scanned once; offsets are mapped back to parts with
numpy ``searchsorted``. Per candidate the unavoidable work is canonical form,
checksum and one HMAC; the fingerprint lookup is vectorised.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import accumulate
from operator import itemgetter
from pathlib import Path

import numpy as np

from leaksentry.config.matching import MatchingConfig
from leaksentry.errors import ConfigError
from pipelines.match.digest import Digester
from pipelines.match.finder import Candidate, Finder
from pipelines.match.fpfile import RECORD_MASK, FingerprintSet
from pipelines.match.keys import read_key
from pipelines.match.kinds import Kind, build_kinds
from pipelines.match.severity import assess
from pipelines.model import CELL_SEP, Match, ScanResult, TextPart

_SEP = b"\n"
_CELL = CELL_SEP.encode()
_DIGIT_RUN = re.compile(r"[0-9\uff10-\uff19]{4,}")
_NATURAL = re.compile(r"(\d+)")


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(65 + rem) + out
    return out


_COLUMNS = [column_letter(i) for i in range(702)]  # A .. ZZ


def natural_key(ref: str) -> tuple:
    if ref.isdigit():
        return (0, int(ref), ref)
    return (1, tuple(int(p) if p.isdigit() else p for p in _NATURAL.split(ref)), ref)


@dataclass(slots=True)
class _State:
    parts: int = 0
    # digest -> [kind index, masked, record, count, first where, digest]
    seen: dict[int, list] = field(default_factory=dict)
    records: set[int] = field(default_factory=set)
    record_level: set[int] = field(default_factory=set)
    unmatched: dict[str, set[int]] = field(default_factory=dict)
    snippets: list[str] = field(default_factory=list)


class Matcher:
    """Holds the key, the memory-mapped fingerprints and the compiled kinds.

    Cheap to load (the fingerprint file is mapped, not read into objects) and
    usable in a child process after ``os.fork()``.
    """

    def __init__(self, key: bytes, fingerprints: FingerprintSet,
                 config: MatchingConfig | None = None, engine: str = "auto") -> None:
        self.config = config or MatchingConfig()
        self.fingerprints = fingerprints
        self.kinds: list[Kind] = build_kinds(self.config)
        self.finder = Finder(self.kinds, engine)
        self._digester = Digester(key)
        self._checked = [k.name for k in self.kinds if k.has_checksum]

    @property
    def engine(self) -> str:
        return self.finder.engine

    @classmethod
    def load(cls, key_path: Path | str, fingerprints_path: Path | str,
             config: MatchingConfig | None = None, engine: str = "auto") -> Matcher:
        key = read_key(key_path)
        return cls(key, FingerprintSet(fingerprints_path, key), config, engine)

    @classmethod
    def from_config(cls, cfg: MatchingConfig) -> Matcher:
        if cfg.key is None:
            raise ConfigError("matching.key: not set (path of the key file made by keygen)")
        if cfg.fingerprints is None:
            raise ConfigError("matching.fingerprints: not set (path of the fingerprint file)")
        return cls.load(cfg.key, cfg.fingerprints, cfg)

    # -- scanning -------------------------------------------------------------------------------

    def scan(self, parts: Iterable[TextPart]) -> ScanResult:
        state = _State(unmatched={name: set() for name in self._checked})
        limit = self.config.batch_bytes
        bufs: list[bytes] = []
        metas: list[TextPart] = []
        size = 0
        for part in parts:
            state.parts += 1
            data = part.text.encode("utf-8", "replace")
            if size and size + len(data) > limit:
                self._scan_batch(bufs, metas, state)
                bufs, metas, size = [], [], 0
            bufs.append(data)
            metas.append(part)
            size += len(data) + 1
        if bufs:
            self._scan_batch(bufs, metas, state)
        return self._result(state)

    def _scan_batch(self, bufs: list[bytes], metas: list[TextPart], state: _State) -> None:
        bufs.insert(0, b"")
        bufs.append(b"")
        buf = _SEP.join(bufs)
        del bufs[0], bufs[-1]
        # starts[i] = offset of part i's first byte; a sentinel end past the last part
        starts = list(accumulate((len(b) + 1 for b in bufs), initial=1))
        cands = self.finder.find(buf)
        if not cands:
            return
        kinds = self.kinds
        fns = [(k.canonical_b, k.valid_b, k.prefix) for k in kinds]
        inner, outer = self._digester.states()
        icopy, ocopy = inner.copy, outer.copy
        valid_c: list[Candidate] = []
        canon: list[bytes] = []
        raw = bytearray()
        canon_all: list[bytes] = []  # every candidate's canonical form, for masking snippets
        for c in cands:
            canonical_b, valid_b, prefix = fns[c[0]]
            canonical = canonical_b(buf[c[1]:c[2]])
            canon_all.append(canonical)
            if valid_b(canonical):
                valid_c.append(c)
                canon.append(canonical)
                h = icopy()
                h.update(prefix + canonical)
                o = ocopy()
                o.update(h.digest())
                raw += o.digest()[:8]
        if not valid_c:
            return
        fp = self.fingerprints
        q = np.frombuffer(raw, dtype=">u8").astype(np.uint64)
        found, idx = fp.lookup(q)
        pos = np.fromiter((c[1] for c in valid_c), dtype=np.int64, count=len(valid_c))
        part_of = np.searchsorted(np.asarray(starts, dtype=np.int64), pos, "right") - 1
        records = (fp.meta[idx].astype(np.int64) & RECORD_MASK) if len(fp.digests) else idx
        # identifiers held by several register records (a duplicated register row)
        n = len(fp.digests)
        nxt = np.minimum(idx + 1, max(n - 1, 0))

        kind_arr = np.fromiter((c[0] for c in valid_c), dtype=np.int64, count=len(valid_c))
        miss = ~found
        if miss.any():  # valid identifiers that are not in the register: distinct, per kind
            for ki, kind in enumerate(kinds):
                um = state.unmatched.get(kind.name)
                if um is not None:
                    sel = miss & (kind_arr == ki)
                    if sel.any():
                        um.update(q[sel].tolist())
        hit_idx = np.flatnonzero(found)
        if len(hit_idx):
            self._aggregate(buf, starts, metas, valid_c, canon, q, hit_idx, records, part_of,
                            state)
            if n:
                dup = found & (idx + 1 < n) & (fp.digests[nxt] == q)
                for ci in np.flatnonzero(dup).tolist():
                    state.records.update(fp.records_at(int(idx[ci]), int(q[ci])))
        if len(hit_idx) > 1:
            self._record_level(buf, metas, valid_c, hit_idx, part_of, records, q, state)
        if len(state.snippets) < self.config.snippets:
            self._snippets(buf, starts, cands, canon_all, valid_c, hit_idx.tolist(), state)

    def _aggregate(self, buf: bytes, starts: list[int], metas: list[TextPart],
                   valid_c: list[Candidate], canon: list[bytes], q: np.ndarray,
                   hit_idx: np.ndarray, records: np.ndarray, part_of: np.ndarray,
                   state: _State) -> None:
        """One entry per distinct identifier: count, first place, mask; no Python work
        per repeated occurrence."""
        uniq, first, counts = np.unique(q[hit_idx], return_index=True, return_counts=True)
        order = np.argsort(first, kind="stable")  # document order of first occurrences
        first_c = hit_idx[first[order]]
        seen = state.seen
        masks = [k.mask_b for k in self.kinds]
        where = self._where
        lines = [-1, 0, 0]
        count = buf.count
        columns = _COLUMNS
        for dg, ci, cnt, rec, pi in zip(uniq[order].tolist(), first_c.tolist(),
                                        counts[order].tolist(), records[first_c].tolist(),
                                        part_of[first_c].tolist(), strict=True):
            entry = seen.get(dg)
            if entry is not None:
                entry[3] += cnt
                continue
            ki, at, _ = valid_c[ci]
            part = metas[pi]
            row = part.row
            if row is not None and part.location:  # the common table case, inlined
                n = count(_CELL, starts[pi], at)
                place = f"{part.location}!{columns[n] if n < 702 else column_letter(n)}{row}"
            else:
                place = where(buf, starts, metas, pi, at, lines)
            seen[dg] = [ki, masks[ki](canon[ci]), rec, cnt, place, dg]
        state.records.update(np.unique(records[hit_idx]).tolist())

    @staticmethod
    def _where(buf: bytes, starts: list[int], metas: list[TextPart], pi: int, at: int,
               lines: list[int]) -> str:
        """``Sheet1!C2`` for a table cell, ``name:line N`` for text. ``lines`` caches
        (part, offset, line) so that counting newlines stays linear in a big part."""
        part = metas[pi]
        if part.row is not None:
            n = buf.count(_CELL, starts[pi], at)
            col = _COLUMNS[n] if n < len(_COLUMNS) else column_letter(n)
            return f"{part.location}!{col}{part.row}" if part.location else f"{col}{part.row}"
        if lines[0] == pi and lines[1] <= at:
            line = lines[2] + buf.count(b"\n", lines[1], at)
        else:
            line = buf.count(b"\n", starts[pi], at) + 1
        lines[:] = [pi, at, line]
        return f"{part.location}:line {line}" if part.location else f"line {line}"

    def _record_level(self, buf: bytes, metas: list[TextPart], cands: list[Candidate],
                      hit_idx: np.ndarray, part_of: np.ndarray, records: np.ndarray,
                      q: np.ndarray, state: _State) -> None:
        """Two different identifiers of one record in one table row, or within the window
        in text. Sorted by (part, record, position), such pairs are neighbours."""
        pos = np.fromiter((cands[i][1] for i in hit_idx.tolist()), dtype=np.int64,
                          count=len(hit_idx))
        p, r, d = part_of[hit_idx], records[hit_idx], q[hit_idx]
        o = np.lexsort((pos, r, p))
        p, r, d, o_idx = p[o], r[o], d[o], hit_idx[o]
        pairs = np.flatnonzero((p[1:] == p[:-1]) & (r[1:] == r[:-1]) & (d[1:] != d[:-1]))
        if not len(pairs):
            return
        is_row = np.fromiter((metas[i].row is not None for i in p[pairs].tolist()), dtype=bool,
                             count=len(pairs))
        state.record_level.update(r[pairs[is_row]].tolist())
        window = self.config.window
        for j in pairs[~is_row].tolist():
            rec = int(r[j])
            if rec in state.record_level:
                continue
            gap = buf[cands[int(o_idx[j])][2]:cands[int(o_idx[j + 1])][1]]
            if len(gap) <= window or len(gap.decode("utf-8", "ignore")) <= window:
                state.record_level.add(rec)

    def _snippets(self, buf: bytes, starts: list[int], cands: list[Candidate],
                  canon_all: list[bytes], valid_c: list[Candidate], around: list[int],
                  state: _State) -> None:
        """Short context around the first matches, every identifier-shaped token masked
        (found or not, valid or not), then any remaining run of 4+ digits starred."""
        if not around:
            return
        ctx = self.config.snippet_chars
        cand_starts = [c[1] for c in cands]  # sorted: the finder returns them in order
        covered = -1
        for i in around:
            if len(state.snippets) >= self.config.snippets:
                break
            s, e = valid_c[i][1], valid_c[i][2]
            if s < covered:
                continue  # already shown in the previous snippet
            pi = bisect_right(starts, s) - 1
            lo = max(starts[pi], s - 4 * ctx)
            hi = min(starts[pi + 1] - 1, e + 4 * ctx)
            covered = min(hi, e + ctx)
            j = max(0, bisect_right(cand_starts, lo) - 1)
            if j < len(cands) and cands[j][1] < lo < cands[j][2]:
                lo = cands[j][1]  # a token straddling the window start is shown masked
            out: list[str] = []
            cur = lo
            focus = (0, 0)
            while j < len(cands) and cands[j][1] < hi:
                ki, ss, se = cands[j]
                cn = canon_all[j]
                j += 1
                if se <= lo or ss < cur:
                    continue
                masked = self.kinds[ki].mask_b(cn)
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
            text = _DIGIT_RUN.sub(lambda m: "*" * len(m.group()), text).strip()
            if text:
                state.snippets.append(text)

    def _result(self, state: _State) -> ScanResult:
        fp = self.fingerprints
        ref = fp.ref
        refs = {r: ref(r) for r in sorted(state.records)}
        entries = sorted(state.seen.values(), key=itemgetter(2, 0))  # register order, kind
        names = [k.name for k in self.kinds]
        matches = [Match(names[ki], masked, refs[rec], count, where, f"{dg:016x}")
                   for ki, masked, rec, count, where, dg in entries]
        unmatched = {k: len(v) for k, v in state.unmatched.items()}
        severity, risk = assess(len(refs), len(state.record_level),
                                max(unmatched.values(), default=0), self.config.severity)
        distinct = list(dict.fromkeys(refs.values()))
        if fp.ref_table:  # row numbers are already in order
            distinct.sort(key=natural_key)
        level = [refs[r] for r in sorted(state.record_level)]
        if fp.ref_table:
            level = sorted(set(level), key=natural_key)
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
        )
