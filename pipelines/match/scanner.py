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
from itertools import accumulate, pairwise
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


def natural_key(ref: str) -> tuple:
    if ref.isdigit():
        return (0, int(ref), ref)
    return (1, tuple(int(p) if p.isdigit() else p for p in _NATURAL.split(ref)), ref)


@dataclass(slots=True)
class _Seen:
    kind: str
    masked: str
    record: int
    count: int
    where: str
    digest: int


@dataclass(slots=True)
class _State:
    parts: int = 0
    seen: dict[int, _Seen] = field(default_factory=dict)
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
        d64 = self._digester.digest64
        valid_c: list[Candidate] = []
        canon: list[str] = []
        digests: list[int] = []
        invalid_c: list[tuple[Candidate, str]] = []
        for c in cands:
            kind = kinds[c[0]]
            canonical = kind.canonical(buf[c[1]:c[2]])
            if kind.valid(canonical):
                valid_c.append(c)
                canon.append(canonical)
                digests.append(d64(kind.message(canonical)))
            else:
                invalid_c.append((c, canonical))
        if not valid_c:
            self._snippets(buf, starts, metas, [], invalid_c, [], state)
            return
        fp = self.fingerprints
        q = np.fromiter(digests, dtype=np.uint64, count=len(digests))
        found, idx = fp.lookup(q)
        found_l = found.tolist()
        pos = np.fromiter((c[1] for c in valid_c), dtype=np.int64, count=len(valid_c))
        part_of = np.searchsorted(np.asarray(starts, dtype=np.int64), pos, "right") - 1
        records = (fp.meta[idx].astype(np.int64) & RECORD_MASK) if len(fp.digests) else idx
        # identifiers held by several register records (a duplicated register row)
        n = len(fp.digests)
        nxt = np.minimum(idx + 1, max(n - 1, 0))
        dup_l = (found & (idx + 1 < n) & (fp.digests[nxt] == q)).tolist() if n else []

        seen = state.seen
        recs_l = records.tolist()
        part_l = part_of.tolist()
        matched_pos: list[int] = []
        for i, hit in enumerate(found_l):
            dg = digests[i]
            if not hit:
                um = state.unmatched.get(kinds[valid_c[i][0]].name)
                if um is not None:
                    um.add(dg)
                continue
            matched_pos.append(i)
            s = seen.get(dg)
            if s is not None:
                s.count += 1
                continue
            kind = kinds[valid_c[i][0]]
            rec = recs_l[i]
            seen[dg] = _Seen(kind.name, kind.mask(canon[i]), rec, 1,
                             self._where(buf, starts, metas, part_l[i], valid_c[i][1]), dg)
            if dup_l[i]:
                state.records.update(fp.records_at(int(idx[i]), int(q[i])))
            else:
                state.records.add(rec)
        if len(matched_pos) > 1:
            self._record_level(buf, metas, valid_c, matched_pos, part_l, recs_l, digests, state)
        if len(state.snippets) < self.config.snippets:
            self._snippets(buf, starts, metas, valid_c, invalid_c, canon, state,
                           matched_pos)

    @staticmethod
    def _where(buf: bytes, starts: list[int], metas: list[TextPart], pi: int, at: int) -> str:
        part = metas[pi]
        if part.row is not None:
            col = column_letter(buf.count(_CELL, starts[pi], at))
            return f"{part.location}!{col}{part.row}" if part.location else f"{col}{part.row}"
        line = buf.count(b"\n", starts[pi], at) + 1
        return f"{part.location}:line {line}" if part.location else f"line {line}"

    def _record_level(self, buf: bytes, metas: list[TextPart], cands: list[Candidate],
                      matched: list[int], part_l: list[int], recs_l: list[int],
                      digests: list[int], state: _State) -> None:
        """Two different identifiers of one record in one row, or within the window."""
        window = self.config.window
        order = sorted(matched, key=lambda i: (part_l[i], recs_l[i], cands[i][1]))
        for a, b in pairwise(order):
            if part_l[a] != part_l[b] or recs_l[a] != recs_l[b] or digests[a] == digests[b]:
                continue
            rec = recs_l[a]
            if rec in state.record_level:
                continue
            if metas[part_l[a]].row is not None:
                state.record_level.add(rec)
                continue
            gap = buf[cands[a][2]:cands[b][1]]
            if len(gap) <= window or len(gap.decode("utf-8", "ignore")) <= window:
                state.record_level.add(rec)

    def _snippets(self, buf: bytes, starts: list[int], metas: list[TextPart],
                  valid_c: list[Candidate], invalid_c: list[tuple[Candidate, str]],
                  canon: list[str], state: _State, around: list[int] | None = None) -> None:
        """Short context around the first matches, every identifier-shaped token masked."""
        if not around:
            return
        ctx = self.config.snippet_chars
        spans = sorted(
            [(c[1], c[2], self.kinds[c[0]].mask(canon[i])) for i, c in enumerate(valid_c)]
            + [(c[1], c[2], self.kinds[c[0]].mask(cn)) for c, cn in invalid_c])
        span_starts = [s[0] for s in spans]
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
            out: list[str] = []
            cur = lo
            j = max(0, bisect_right(span_starts, lo) - 1)
            focus = (0, 0)
            while j < len(spans) and spans[j][0] < hi:
                ss, se, masked = spans[j]
                j += 1
                if se <= lo or ss < cur:
                    continue
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
        refs = {r: fp.ref(r) for r in state.records}
        ordered = sorted(state.seen.values(), key=lambda s: (natural_key(refs[s.record]), s.kind))
        matches = [Match(kind=s.kind, masked=s.masked, record_ref=refs[s.record], count=s.count,
                         where=s.where, digest=f"{s.digest:016x}") for s in ordered]
        unmatched = {k: len(v) for k, v in state.unmatched.items()}
        severity, risk = assess(len(refs), len(state.record_level),
                                max(unmatched.values(), default=0), self.config.severity)
        return ScanResult(
            severity=severity,
            risk_score=risk,
            matched_records=len(set(refs.values())),
            record_refs=sorted(set(refs.values()), key=natural_key),
            record_level_refs=sorted({refs[r] for r in state.record_level}, key=natural_key),
            matches=matches,
            unmatched_valid=unmatched,
            parts=state.parts,
            snippets=state.snippets,
        )
