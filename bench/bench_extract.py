"""Extraction benchmarks: the 56,000-row XLSX export against 1 million fingerprints, the
per-document cost of the warm and forked workers, and resident memory while a 200 MB
CSV is streamed.

    .venv/bin/python bench/bench_extract.py [--records 1000000] [--rows 56000]
        [--csv-mb 200] [--workdir /tmp/leaksentry-bench]

The register, key and fingerprint file are cached in --workdir (built once).
Everything is fictional (leaksentry.synth); the output holds counts and times only.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from leaksentry.config.extract import ExtractConfig
from leaksentry.synth import register_rows
from pipelines.extract import extract
from pipelines.model import Document
from pipelines.process import DocumentScanner, scan_inline


def _rss_kib(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def _records(matcher) -> int:
    from pipelines.match import read_info

    return read_info(matcher.fingerprints.path).records


def build_matcher(workdir: Path, records: int):
    from pipelines.match import Matcher, build_fingerprints, generate_key, read_key

    workdir.mkdir(parents=True, exist_ok=True)
    register = workdir / f"register-{records}.csv"
    key, fp = workdir / "key", workdir / f"fp-{records}"
    if not register.exists():
        t = time.perf_counter()
        tmp = register.with_suffix(".tmp")
        with tmp.open("w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(register_rows(records, seed=7))
        tmp.rename(register)
        print(f"register: {records:,} fictional records written in "
              f"{time.perf_counter() - t:.1f} s")
    if not key.exists():
        generate_key(key)
        fp.unlink(missing_ok=True)
    if not fp.exists():
        t = time.perf_counter()
        build_fingerprints(register, read_key(key), fp, hkid_column="hkid", hn_column="hn",
                           ref_column="ref")
        print(f"fingerprints build: {time.perf_counter() - t:.1f} s")
    return register, Matcher.load(key, fp)


def export_xlsx(register: Path, rows: int) -> bytes:
    """The incident's export: name, gender, HKID, hospital number, procedure."""
    import xlsxwriter

    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True, "constant_memory": True})
    ws = wb.add_worksheet("Sheet1")
    ws.write_row(0, 0, ["Name", "Gender", "HKID", "Hospital No", "Procedure"])
    with register.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        head = next(reader)
        ix = [head.index(c) for c in ("name", "gender", "hkid", "hn", "procedure")]
        for r, row in enumerate(reader, start=1):
            if r > rows:
                break
            hk = row[ix[2]]
            ws.write_row(r, 0, [row[ix[0]], row[ix[1]], f"{hk[:-1]}({hk[-1]})", row[ix[3]],
                                row[ix[4]]])
    wb.close()
    return buf.getvalue()


def bench_xlsx(matcher, register: Path, rows: int) -> None:
    data = export_xlsx(register, rows)
    print(f"\n== {rows:,}-row XLSX export ({len(data) / 1e6:.1f} MB) against "
          f"{_records(matcher):,} fingerprinted records")
    c = time.process_time()
    t = time.perf_counter()
    n = sum(1 for _ in extract(data, "export.xlsx").parts())
    print(f"extraction only:            {time.perf_counter() - t:6.2f} s wall, "
          f"{time.process_time() - c:5.2f} s CPU  ({n:,} row parts)")
    cfg = ExtractConfig()
    runs = []
    result = None
    for _ in range(3):
        c = time.process_time()
        t = time.perf_counter()
        result = scan_inline(data, "export.xlsx", matcher, cfg)
        runs.append((time.perf_counter() - t, time.process_time() - c))
    assert result is not None
    wall, cpu = min(runs)
    print(f"extract + scan, in-process: {wall:6.2f} s wall, {cpu:5.2f} s CPU  (best of 3; "
          f"target <= 3 s on one core)")
    print(f"  status {result.status}, matched records {result.matched_records:,}, "
          f"record-level {len(result.record_level_refs):,} of {rows:,}, severity "
          f"{result.severity}")
    doc = Document(url="export.xlsx", source="bench", content=data, filename="export.xlsx")
    warmup = Document(url="w.csv", source="bench", content=b"a,b\n1,2\n", filename="w.csv")
    for mode in ("warm", "fork"):
        with DocumentScanner(matcher, cfg, mode=mode) as scanner:
            scanner.scan(warmup)  # a warm worker is started once per scanner, not per document
            before = _children_cpu() + _worker_cpu(scanner)
            t = time.perf_counter()
            r = scanner.scan(doc).result
            took = time.perf_counter() - t
            cpu = _children_cpu() + _worker_cpu(scanner) - before
        print(f"extract + scan, {mode} worker:  {took:6.2f} s wall, {cpu:5.2f} s CPU in the "
              f"worker (record-level {len(r.record_level_refs):,}, status {r.status})")


def _worker_cpu(scanner: DocumentScanner) -> float:
    """CPU seconds of a live warm worker so far (0 for none, or without psutil)."""
    try:
        import psutil
    except ImportError:
        return 0.0
    pid = scanner._pid
    if not pid:
        return 0.0
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def bench_workers(matcher, docs: int = 200) -> None:
    print(f"\n== per-document worker cost ({docs} small CSV documents, matcher loaded)")
    body = b"name,hkid\nCHAN Ka Ming,A1234563\n"
    doc = Document(url="p.csv", source="bench", content=body, filename="p.csv")
    base = None
    for mode in ("inline", "warm", "fork"):
        with DocumentScanner(matcher, mode=mode) as scanner:
            scanner.scan(doc)
            t = time.perf_counter()
            for _ in range(docs):
                scanner.scan(doc)
            per = (time.perf_counter() - t) / docs * 1000
        base = base or per
        print(f"{mode:>6}: {per:7.2f} ms/document  ({per / base:5.1f}x inline)")
    big = Document(url="b.csv", source="bench", content=body * 300_000, filename="b.csv")
    print(f"one {len(big.content) / 1e6:.0f} MB CSV:")
    for mode in ("inline", "warm", "fork"):
        with DocumentScanner(matcher, mode=mode) as scanner:
            t = time.perf_counter()
            scanner.scan(big)
            print(f"{mode:>6}: {time.perf_counter() - t:7.2f} s")


def bench_csv_memory(matcher, register: Path, mb: int) -> None:
    print(f"\n== {mb} MB CSV streamed: resident memory growth (target <= 200 MB)")
    with register.open("rb") as f:
        block = f.read(8 << 20)
    block = block[: block.rfind(b"\n") + 1]
    head, _, body = block.partition(b"\n")
    reps = mb * (1 << 20) // len(body) + 1
    data = head + b"\n" + body * reps
    del block
    rows = data.count(b"\n")
    print(f"document: {len(data) / 1e6:.0f} MB, {rows:,} rows")
    cfg = ExtractConfig(time_limit=3600)  # measuring memory, not the time limit
    one = head + b"\n" + body.split(b"\n", 1)[0] + b"\n"
    same = one + one.partition(b"\n")[2] * (len(data) // len(one))
    for label, doc, run in (
        ("extraction only          ", data,
         lambda d: sum(1 for _ in extract(d, "big.csv", cfg).parts())),
        ("extract + scan           ", data,
         lambda d: scan_inline(d, "big.csv", matcher, cfg).matched_records),
        ("extract + scan, 1 patient", same,
         lambda d: scan_inline(d, "big.csv", matcher, cfg).matched_records),
    ):
        before = _rss_kib()
        peak_ok = _reset_peak()
        c = time.process_time()
        t = time.perf_counter()
        out = run(doc)
        took, cpu = time.perf_counter() - t, time.process_time() - c
        peak = _rss_kib("VmHWM") if peak_ok else 0
        grow = (peak - before) / 1024
        print(f"{label}: {took:6.1f} s wall, {cpu:6.1f} s CPU, RSS before "
              f"{before / 1024:5.0f} MB, peak growth {grow:5.0f} MB"
              + ("" if peak_ok else " (peak reset unsupported)") + f"  [{out:,}]")


def bench_sheet_memory(register: Path, rows: int) -> None:
    print(f"\n== {rows:,}-row XLSX extracted: resident memory growth")
    data = export_xlsx(register, rows)
    print(f"document: {len(data) / 1e6:.0f} MB")
    before = _rss_kib()
    peak_ok = _reset_peak()
    c = time.process_time()
    n = sum(1 for _ in extract(data, "big.xlsx", ExtractConfig(time_limit=3600)).parts())
    cpu = time.process_time() - c
    grow = (_rss_kib("VmHWM") - before) / 1024 if peak_ok else float("nan")
    print(f"extraction only: {cpu:6.1f} s CPU, peak RSS growth {grow:5.0f} MB "
          f"(calamine's cells for the sheet; rows become Python objects one at a time) "
          f"[{n:,} parts]")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--rows", type=int, default=56_000)
    ap.add_argument("--csv-mb", type=int, default=200)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/leaksentry-bench"))
    ap.add_argument("--sheet-rows", type=int, default=500_000)
    ap.add_argument("--skip", nargs="*", default=[],
                    choices=["xlsx", "workers", "csv", "sheet"])
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    register, matcher = build_matcher(args.workdir, args.records)
    print(f"matcher engine: {matcher.engine}, CPU cores available: "
          f"{len(os.sched_getaffinity(0))}")
    if "xlsx" not in args.skip:
        bench_xlsx(matcher, register, args.rows)
    if "workers" not in args.skip:
        bench_workers(matcher)
    if "sheet" not in args.skip:
        bench_sheet_memory(register, args.sheet_rows)
    if "csv" not in args.skip:
        bench_csv_memory(matcher, register, args.csv_mb)


if __name__ == "__main__":
    main()
