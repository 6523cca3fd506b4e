"""The notification report: who must be told, about which leaks, and what was exposed.

Runs on the trusted side, because it needs the register: hits name records only by
register reference, and this joins those references back to the register's rows.
Everything it learns about people goes to the one output file; what it returns to
the caller (and the CLI prints) is counts only.

The join is checked before anything is written: every affected reference must be a
row of the register, and — given the key and the fingerprint file — that row's
identifiers, keyed with that key, must be the fingerprints that named it. A wrong
register, a re-ordered one, or the wrong key is refused instead of notifying the
wrong people.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from leaksentry.config.matching import MatchingConfig
from leaksentry.errors import LeakSentryError
from leaksentry.identifiers.kinds import build_kinds
from pipelines.match.digest import Digester
from pipelines.match.fpfile import FingerprintSet
from pipelines.match.register import find_column, read_rows
from pipelines.model import is_severity, severity_rank


class NotifyError(LeakSentryError):
    """The hits and the register do not fit together, or the report cannot be written."""


@dataclass(frozen=True, slots=True)
class Leak:
    """One hit, as the report shows it (URL already redacted by the store)."""

    hit_id: int
    source: str
    url: str
    first_seen: str
    severity: str
    exposed_categories: tuple[str, ...] = ()
    exposed_fields: tuple[str, ...] = ()


@dataclass(slots=True)
class Person:
    ref: str
    leaks: list[Leak] = field(default_factory=list)
    kinds: set[str] = field(default_factory=set)
    row: int = 0  # 1-based data row in the register
    values: list[str] = field(default_factory=list)  # the --include columns

    def exposed(self) -> list[str]:
        """Identifier kinds matched for this record, then the documents' categories."""
        cats = {c for leak in self.leaks for c in leak.exposed_categories}
        return [f"identifier ({k})" for k in sorted(self.kinds)] + sorted(cats - {"identifier"})


@dataclass(slots=True)
class Summary:
    people: int = 0
    leaks: int = 0
    per_source: Counter[str] = field(default_factory=Counter)
    per_category: Counter[str] = field(default_factory=Counter)
    per_severity: Counter[str] = field(default_factory=Counter)
    verified: int | None = None  # rows whose fingerprints were checked

    def rows(self) -> list[tuple[str, str, int]]:
        out = [("total", "affected people", self.people), ("total", "leaks", self.leaks)]
        out += [("source", k, v) for k, v in sorted(self.per_source.items())]
        out += [("category", k, v) for k, v in sorted(self.per_category.items())]
        out += [("severity", k, v) for k, v in sorted(
            self.per_severity.items(), key=lambda kv: -_rank(kv[0]))]
        return out


def _leak(hit: dict[str, Any]) -> Leak:
    try:
        return Leak(hit_id=int(hit["hit_id"]), source=str(hit["source"]),
                    url=str(hit.get("url") or ""), first_seen=str(hit.get("first_seen") or ""),
                    severity=str(hit.get("severity") or "none"),
                    exposed_categories=tuple(hit.get("exposed_categories") or ()),
                    exposed_fields=tuple(hit.get("exposed_fields") or ()))
    except (KeyError, TypeError, ValueError):
        raise NotifyError("a hit lacks hit_id/source: give `leaksentry hits --json`"
                          " output") from None


def read_hits_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NotifyError(f"{path}: cannot read hits: "
                          f"{getattr(exc, 'strerror', None) or 'not UTF-8 text'}") from None
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            hit = json.loads(line)
        except ValueError:
            raise NotifyError(f"{path}: line {n} is not JSON (expected `leaksentry hits"
                              " --json` output)") from None
        if not isinstance(hit, dict) or "record_refs" not in hit:
            raise NotifyError(f"{path}: line {n} is not a hit (no record_refs)")
        yield hit


def affected(hits: Iterable[dict[str, Any]]) -> tuple[dict[str, Person], list[Leak]]:
    people: dict[str, Person] = {}
    leaks: list[Leak] = []
    for hit in hits:
        leak = _leak(hit)
        leaks.append(leak)
        kinds: dict[str, set[str]] = {}
        for m in hit.get("matches") or ():
            ref = m.get("record_ref")
            if ref is not None:
                kinds.setdefault(str(ref), set()).add(str(m.get("kind")))
        for ref in hit.get("record_refs") or ():
            ref = str(ref)
            p = people.get(ref)
            if p is None:
                p = people[ref] = Person(ref)
            p.leaks.append(leak)
            p.kinds |= kinds.get(ref, set())
    return people, leaks


@dataclass
class RegisterSpec:
    path: Path
    ref_column: str | None = None
    hkid_column: str | None = None
    hn_column: str | None = None
    include: list[str] = field(default_factory=list)


def join_register(people: dict[str, Person], spec: RegisterSpec,
                  config: MatchingConfig | None = None, key: bytes | None = None,
                  fingerprints: Path | None = None) -> tuple[list[str], int | None]:
    """Fill each person's row and --include values from the register; check the join.
    Returns (included column names, rows verified against the fingerprints or None)."""
    rows = read_rows(spec.path)
    header = next(rows, None)
    if header is None:
        raise NotifyError(f"{spec.path}: register is empty (no header row)")
    ref_col = (find_column(spec.path, header, spec.ref_column, "ref", required=True)
               if spec.ref_column else None)
    inc_cols = [find_column(spec.path, header, name, "include", required=True)
                for name in spec.include]
    kinds = build_kinds(config)
    names = {"hkid": spec.hkid_column, "hn": spec.hn_column}
    id_cols = []
    if key is not None:
        for kind in kinds:
            col = find_column(spec.path, header, names.get(kind.name, kind.column), kind.name,
                              required=False)
            if col is not None:
                id_cols.append((col, kind))
        if not id_cols:
            raise NotifyError(f"{spec.path}: no identifier column to verify against the"
                              " fingerprints; name it with --hkid-column / --hn-column")
    found: dict[int, list[str]] = {}  # row -> the identifier cells, for verification
    remaining = len(people)
    lookup = people.get  # a million rows: the loop body is kept to the bone
    for row_no, row in enumerate(rows, start=1):
        if ref_col is None:
            p = lookup(str(row_no))
        else:
            try:
                ref = row[ref_col]
            except IndexError:
                ref = ""
            p = lookup(ref) or lookup(ref.strip() or str(row_no))
        if p is None or p.row:
            continue
        p.row = row_no
        p.values = [row[c].strip() if c < len(row) else "" for c in inc_cols]
        if id_cols:
            found[row_no] = [row[c] if c < len(row) else "" for c, _ in id_cols]
        remaining -= 1
        if remaining == 0:
            break
    missing = [p for p in people.values() if not p.row]
    if missing:
        raise NotifyError(
            f"{spec.path}: {len(missing)} of {len(people)} affected record refs are not in"
            " this register (wrong register, or a different --ref-column than the"
            " fingerprints were built with?)")
    verified = None
    if key is not None:
        if fingerprints is None:
            raise NotifyError("--key needs --fingerprints to check the register against")
        verified = _verify(found, [k for _, k in id_cols], key, fingerprints, spec.path,
                           {p.row: p.ref for p in people.values()})
    return [header[c].strip() for c in inc_cols], verified


def _verify(found: dict[int, list[str]], kinds: list[Any], key: bytes, fp_path: Path,
            register: Path, refs: dict[int, str]) -> int:
    """Each affected row's identifiers, keyed with ``key``, must be fingerprints of that
    very row (and carry its reference)."""
    fps = FingerprintSet(fp_path, key)  # a wrong key is refused here (key id + MAC)
    try:
        digester = Digester(key)
        bad = checked = 0
        rows_order = sorted(found)
        for ki, kind in enumerate(kinds):
            msgs, owners = [], []
            for row_no in rows_order:
                canon = kind.canonical_cell(found[row_no][ki])
                if canon is None:
                    continue
                msgs.append(kind.message(canon))
                owners.append(row_no)
            if not msgs:
                continue
            digests = np.frombuffer(b"".join(d[:8] for d in digester.many(msgs)),
                                    dtype=">u8").astype(np.uint64)
            ok, idx = fps.lookup(digests)
            for j, row_no in enumerate(owners):
                checked += 1
                if not ok[j] or row_no not in fps.records_at(int(idx[j]), int(digests[j])) \
                        or fps.ref(row_no) != refs[row_no]:
                    bad += 1
        if checked == 0:
            raise NotifyError(f"{register}: the affected rows hold no identifier to verify")
        if bad:
            raise NotifyError(
                f"{register}: {bad} of {checked} identifiers of affected rows are not the"
                f" fingerprints in {fp_path} for those rows: wrong register, a changed"
                " register, or the wrong key — refusing to write a notification list")
        return len(found)
    finally:
        fps.close()


def summarise(people: dict[str, Person], leaks: list[Leak]) -> Summary:
    s = Summary(people=len(people), leaks=len(leaks))
    for p in people.values():
        for src in {leak.source for leak in p.leaks}:
            s.per_source[src] += 1
        for cat in p.exposed():
            s.per_category[cat] += 1
        worst = max((leak.severity for leak in p.leaks), key=_rank, default="none")
        s.per_severity[worst] += 1
    return s


def _rank(sev: str) -> int:
    return severity_rank(sev) if is_severity(sev) else 0


def _ref_key(ref: str) -> tuple[int, int | str]:
    return (0, int(ref)) if ref.isdigit() else (1, ref)


#: one row per person; each leak's source, URL and first sighting are in its details
#: line (a column each would cost a 56,000-row report a second more to write)
PERSON_COLUMNS = ["Register ref"]
LEAK_COLUMNS = ["Leaks", "Leak details (source, URL, first seen, hit)", "Worst severity",
                "Exposed data", "Exposed fields"]


def person_rows(people: dict[str, Person]) -> Iterator[list[Any]]:
    for ref in sorted(people, key=_ref_key):
        p = people[ref]
        leaks = sorted(p.leaks, key=lambda leak: leak.first_seen)
        yield [p.ref, *p.values, len(leaks),
               "\n".join(f"{leak.source} · {leak.url} · {leak.first_seen} · hit {leak.hit_id}"
                         for leak in leaks),
               max((leak.severity for leak in leaks), key=_rank, default="none"),
               ", ".join(p.exposed()),
               ", ".join(sorted({f for leak in leaks for f in leak.exposed_fields}))]


def open_private(path: Path) -> tuple[int, bool]:
    """Open ``path`` for writing, created 0600; True when its mode lets others read it
    (an existing file keeps its mode)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise NotifyError(f"{path}: cannot write: {exc.strerror}") from None
    return fd, bool(os.fstat(fd).st_mode & 0o077)


def write_report(out: Path, included: list[str], people: dict[str, Person],
                 summary: Summary) -> list[Path]:
    """Write the report (.xlsx: people + summary sheets; .csv: people, and the summary
    beside it as NAME.summary.csv). Returns the files that are readable by others."""
    header = [*PERSON_COLUMNS, *included, *LEAK_COLUMNS]
    suffix = out.suffix.lower()
    exposed: list[Path] = []
    if suffix == ".xlsx":
        import xlsxwriter  # only an .xlsx report loads it (a CSV report does not)

        fd, loose = open_private(out)
        if loose:
            exposed.append(out)
        with os.fdopen(fd, "wb") as fh:
            # in memory: xlsxwriter's temp files would put personal data on disk outside
            # --out; its shared-string mode is also 2.5x faster than constant_memory
            wb = xlsxwriter.Workbook(fh, {"in_memory": True,
                                          "strings_to_numbers": False,
                                          "strings_to_formulas": False,
                                          "strings_to_urls": False})
            ws = wb.add_worksheet("Affected people")
            bold = wb.add_format({"bold": True})
            ws.write_row(0, 0, header, bold)
            # typed writes, empty cells left out: write_row's per-cell type sniffing is a
            # fifth of the time of a 56,000-row report
            text, number = ws.write_string, ws.write_number
            for i, row in enumerate(person_rows(people), start=1):
                for j, value in enumerate(row):
                    if value.__class__ is str:
                        if value:
                            text(i, j, value)
                    else:
                        number(i, j, value)
            ss = wb.add_worksheet("Summary")
            ss.write_row(0, 0, ["group", "value", "affected people"], bold)
            for i, line in enumerate(summary.rows(), start=1):
                ss.write_row(i, 0, line)
            wb.close()
        return exposed
    if suffix != ".csv":
        raise NotifyError(f"{out}: unknown report type {suffix or '(none)'}; use .xlsx or .csv")
    side = out.with_name(out.stem + ".summary.csv")
    for path, rows in ((out, [header, *person_rows(people)]),
                       (side, [["group", "value", "affected people"], *summary.rows()])):
        fd, loose = open_private(path)
        if loose:
            exposed.append(path)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            csv.writer(fh).writerows([_csv_safe(c) for c in r] for r in rows)
    return exposed


def _csv_safe(value: Any) -> Any:
    """A spreadsheet opening the CSV must not run a cell (URLs and file names are
    written by strangers): text starting like a formula gets a leading quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
