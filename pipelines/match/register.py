"""Reading the register (CSV or XLSX, streaming) and building the fingerprint file.

This is the only code that ever sees plaintext identifiers, and it runs on
the trusted side. What it reports about the register is counts and row
numbers only: never a value.
"""

from __future__ import annotations

import csv
import io
import multiprocessing
import os
import re
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

from leaksentry.config.matching import MatchingConfig
from leaksentry.errors import RegisterError
from leaksentry.identifiers.kinds import Kind, build_kinds
from pipelines.match.digest import Digester
from pipelines.match.fpfile import KIND_SHIFT, RECORD_MASK, FingerprintInfo, write_fingerprints

_XLSX = (".xlsx", ".xlsm", ".xlsb", ".xls", ".ods")
_GUESS = {
    "hkid": re.compile(r"^(hkid|hkic|hk ?id|id ?(card|no|number)|identity ?card.*|身份證.*)$",
                       re.I),
    "hn": re.compile(r"^(hn|hospital ?(file )?(no|number)|hosp ?no)$", re.I),
}
MAX_ROWS_LISTED = 20
CHUNK_ROWS = 32768  # rows canonicalised per column pass
PARALLEL_AFTER_ROWS = 100_000  # smaller registers are digested in-process
# progress callback: (bytes or rows done, total or None)
Progress = Callable[[int, int | None], None]


@dataclass(slots=True)
class KindReport:
    column: str
    written: int = 0
    empty: int = 0
    invalid: int = 0
    invalid_rows: list[int] = field(default_factory=list)
    duplicates: int = 0
    duplicate_rows: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"column": self.column, "written": self.written, "empty": self.empty,
                "invalid": self.invalid, "invalid_rows": self.invalid_rows,
                "duplicates": self.duplicates, "duplicate_rows": self.duplicate_rows}


@dataclass(slots=True)
class BuildReport:
    register: str
    rows: int = 0
    identifiers: int = 0
    ref_column: str | None = None
    kinds: dict[str, KindReport] = field(default_factory=dict)
    info: FingerprintInfo | None = None

    def to_json(self) -> dict[str, Any]:
        return {"register": self.register, "rows": self.rows, "identifiers": self.identifiers,
                "ref_column": self.ref_column,
                "kinds": {k: r.to_json() for k, r in self.kinds.items()}}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read_rows(path: Path, progress: Progress | None = None) -> Iterator[list[str]]:
    """Header first, then data rows, as lists of strings; streaming for both formats."""
    if path.suffix.lower() in _XLSX:
        yield from _xlsx_rows(path, progress)
    else:
        yield from _csv_rows(path, progress)


def _csv_rows(path: Path, progress: Progress | None) -> Iterator[list[str]]:
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed below; the reader streams from it
    except FileNotFoundError:
        raise RegisterError(f"{path}: register not found") from None
    except OSError as exc:
        raise RegisterError(f"{path}: cannot read register: {exc.strerror}") from None
    with raw:
        total = path.stat().st_size
        sample = raw.read(65536)
        raw.seek(0)
        if b"\0" in sample:
            raise RegisterError(f"{path}: register is not a CSV text file")
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        if delimiter == "," and sample.count(b";") > sample.count(b",") and b";" in sample:
            delimiter = ";"
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="strict", newline="")
        reader = csv.reader(text, delimiter=delimiter)
        i = 0
        try:
            for i, row in enumerate(reader):
                if progress is not None and i % 20000 == 0:
                    progress(raw.tell(), total)
                yield row
        except UnicodeDecodeError:
            raise RegisterError(f"{path}: register is not UTF-8 text (near line {i + 1})") from None
        except csv.Error as exc:
            raise RegisterError(f"{path}: malformed CSV near line {i + 1}: {exc}") from None
        if progress is not None:
            progress(total, total)


def _xlsx_rows(path: Path, progress: Progress | None) -> Iterator[list[str]]:
    from python_calamine import CalamineWorkbook  # only a spreadsheet register loads it

    try:
        wb = CalamineWorkbook.from_path(str(path))
        sheet = wb.get_sheet_by_index(0)
        rows = sheet.iter_rows()
    except FileNotFoundError:
        raise RegisterError(f"{path}: register not found") from None
    except Exception as exc:  # calamine raises its own error types for damaged files
        raise RegisterError(f"{path}: cannot read workbook: {type(exc).__name__}") from None
    total = sheet.height if hasattr(sheet, "height") else None
    for i, row in enumerate(rows):
        if progress is not None and i % 20000 == 0:
            progress(i, total)
        yield [_cell(v) for v in row]
    if progress is not None:
        progress(total or 0, total)


@overload
def find_column(path: Path, header: list[str], name: str | None, kind: str,
                required: Literal[True]) -> int: ...
@overload
def find_column(path: Path, header: list[str], name: str | None, kind: str,
                required: bool) -> int | None: ...
def find_column(path: Path, header: list[str], name: str | None, kind: str,
                required: bool) -> int | None:
    """The index of column ``name`` (exact, then any case), else of the column that looks
    like ``kind``; RegisterError when a named column is missing, or nothing was found and
    the column is ``required``."""
    names = [h.strip() for h in header]
    if name is not None:
        for i, h in enumerate(names):
            if h == name:
                return i
        for i, h in enumerate(names):
            if h.lower() == name.lower():
                return i
        raise RegisterError(f"{path}: no column named {name!r} (columns: {', '.join(names)})")
    guess = _GUESS.get(kind)
    if guess is not None:
        for i, h in enumerate(names):
            if guess.match(h):
                return i
    if required:
        raise RegisterError(f"{path}: no {kind} column found; name it with --{kind}-column")
    return None


_OK, _EMPTY, _INVALID = 0, 1, 2


class _ColumnDigester:
    """Canonical forms and keyed digests of one column chunk: (status per cell, digests of
    the valid cells). Runs in the building process or in a worker."""

    def __init__(self, key: bytes, kinds: list[Kind]) -> None:
        self.kinds = kinds
        inner, outer = Digester(key).states()
        self._icopy, self._ocopy = inner.copy, outer.copy

    def column(self, ki: int, values: list[str]) -> tuple[bytes, bytes]:
        kind = self.kinds[ki]
        canon = kind.canonical_cells_b(values)
        status = bytearray(len(values))
        prefix, icopy, ocopy = kind.prefix, self._icopy, self._ocopy
        out = bytearray()
        for i, c in enumerate(canon):
            if c is None:
                status[i] = _INVALID if values[i].strip() else _EMPTY
                continue
            h = icopy()
            h.update(prefix + c)
            o = ocopy()
            o.update(h.digest())
            out += o.digest()[:8]
        return bytes(status), bytes(out)


_WORKER: _ColumnDigester | None = None


def _worker_init(key: bytes, config_json: str | None) -> None:
    global _WORKER
    cfg = MatchingConfig.model_validate_json(config_json) if config_json else None
    _WORKER = _ColumnDigester(key, build_kinds(cfg))


def _worker_run(jobs: list[tuple[int, list[str]]]) -> list[tuple[bytes, bytes]]:
    assert _WORKER is not None
    return [_WORKER.column(ki, values) for ki, values in jobs]


class _Pool:
    """Worker processes for big registers. Forked, so that no ``__main__`` is re-run; the
    workers only hash (no locks the parent's progress thread could hold)."""

    def __init__(self, key: bytes, config: MatchingConfig | None, workers: int) -> None:
        self._ex = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("fork"),
            initializer=_worker_init,
            initargs=(key, config.model_dump_json() if config is not None else None))

    def submit(self, jobs: list[tuple[int, list[str]]]) -> Future[list[tuple[bytes, bytes]]]:
        return self._ex.submit(_worker_run, jobs)

    def close(self) -> None:
        self._ex.shutdown(cancel_futures=True)


def default_workers() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else (os.cpu_count() or 1)))


def build_fingerprints(register: Path | str, key: bytes, out: Path | str, *,
                       hkid_column: str | None = None, hn_column: str | None = None,
                       ref_column: str | None = None, config: MatchingConfig | None = None,
                       progress: Progress | None = None,
                       workers: int | None = None) -> BuildReport:
    """Read the register once and write the fingerprint file. Returns counts only.

    Registers longer than :data:`PARALLEL_AFTER_ROWS` rows are digested by ``workers``
    processes (default: the usable CPUs, at most 4); the result is identical.
    """
    if workers is None:
        workers = default_workers()
    register = Path(register)
    kinds = build_kinds(config)
    rows = read_rows(register, progress)
    header = next(rows, None)
    if header is None:
        raise RegisterError(f"{register}: register is empty (no header row)")
    columns: list[tuple[int, Kind, int]] = []  # (column index, kind, kind index)
    names = {"hkid": hkid_column, "hn": hn_column}
    for ki, kind in enumerate(kinds):
        explicit = names.get(kind.name, kind.column)
        col = find_column(register, header, explicit, kind.name, required=False)
        if col is not None:
            columns.append((col, kind, ki))
    if not columns:
        raise RegisterError(
            f"{register}: no identifier column found (columns: "
            f"{', '.join(h.strip() for h in header)}); use --hkid-column / --hn-column")
    ref_col = None
    if ref_column is not None:
        ref_col = find_column(register, header, ref_column, "ref", required=True)
    report = BuildReport(register=str(register), ref_column=ref_column)
    for col, kind, _ in columns:
        report.kinds[kind.name] = KindReport(column=header[col].strip())

    raw_digests = bytearray()
    meta = array("I")
    refs: list[str] | None = [""] if ref_col is not None else None  # record 0 unused
    kind_reports = [(col, ki, ki << KIND_SHIFT, report.kinds[kind.name])
                    for col, kind, ki in columns]
    local = _ColumnDigester(key, kinds)
    pool: _Pool | None = None
    pending: deque[tuple[Future[list[tuple[bytes, bytes]]], list[tuple[int, list[str]]], int]] \
        = deque()

    def collect(results: list[tuple[bytes, bytes]], first_row: int) -> None:
        for (_, _, kind_bits, rep), (status, digests) in zip(kind_reports, results, strict=True):
            st = np.frombuffer(status, dtype=np.uint8)
            ok = np.flatnonzero(st == _OK)
            rep.written += len(ok)
            rep.empty += int(np.count_nonzero(st == _EMPTY))
            bad = np.flatnonzero(st == _INVALID)
            rep.invalid += len(bad)
            room = MAX_ROWS_LISTED - len(rep.invalid_rows)
            if room > 0:
                rep.invalid_rows.extend((bad[:room] + first_row).tolist())
            raw_digests.extend(digests)
            meta.extend((kind_bits | (ok + first_row)).astype(np.uint32).tolist())

    def finish(fut: Future[list[tuple[bytes, bytes]]], jobs: list[tuple[int, list[str]]],
               start: int) -> None:
        try:
            results = fut.result()
        except Exception:  # a worker died (out of memory, killed): do it here instead
            results = [local.column(ki, values) for ki, values in jobs]
        collect(results, start)

    def flush(chunk: list[list[str]], first_row: int) -> None:
        nonlocal pool
        jobs = [(ki, [r[col] if col < len(r) else "" for r in chunk])
                for col, ki, _, _ in kind_reports]
        if pool is None and workers > 1 and first_row > PARALLEL_AFTER_ROWS:
            pool = _Pool(key, config, workers)
        if pool is None:
            collect([local.column(ki, values) for ki, values in jobs], first_row)
            return
        pending.append((pool.submit(jobs), jobs, first_row))
        while len(pending) > 2 * workers or (pending and pending[0][0].done()):
            finish(*pending.popleft())

    row_no = 0
    chunk: list[list[str]] = []
    first_row = 1
    try:
        for row_no, row in enumerate(rows, start=1):
            if row_no > RECORD_MASK:
                raise RegisterError(f"{register}: more than {RECORD_MASK} rows")
            if refs is not None and ref_col is not None:
                ref = row[ref_col].strip() if ref_col < len(row) else ""
                refs.append(ref or str(row_no))
            chunk.append(row)
            if len(chunk) == CHUNK_ROWS:
                flush(chunk, first_row)
                chunk, first_row = [], row_no + 1
        if chunk:
            flush(chunk, first_row)
        while pending:
            finish(*pending.popleft())
    finally:
        if pool is not None:
            pool.close()
    report.rows = row_no
    if row_no == 0:
        raise RegisterError(f"{register}: register has no data rows")
    report.identifiers = len(meta)
    if not meta:
        raise RegisterError(f"{register}: no valid identifiers in the register")
    d = np.frombuffer(raw_digests, dtype=">u8").astype(np.uint64)
    m = np.frombuffer(meta, dtype=np.uint32)
    order = np.lexsort((m, d))
    d, m = d[order], m[order]
    dup = np.flatnonzero(d[1:] == d[:-1]) + 1  # later rows holding an earlier identifier
    for _, _, kind_bits, rep in kind_reports:
        mine = dup[(m[dup] >> KIND_SHIFT) == (kind_bits >> KIND_SHIFT)]
        rep.duplicates = len(mine)
        rep.duplicate_rows = sorted(int(r) for r in (m[mine] & RECORD_MASK))[:MAX_ROWS_LISTED]
    counts = [report.kinds[k.name].written if k.name in report.kinds else 0 for k in kinds]
    report.info = write_fingerprints(
        out, key, d, m,
        [k.name for k in kinds], counts, n_records=row_no, refs=refs,
        build={"rows": row_no, "identifiers": len(meta),
               "columns": {k: r.column for k, r in report.kinds.items()},
               "ref_column": ref_column})
    return report
