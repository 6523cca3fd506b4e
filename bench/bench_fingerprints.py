"""Fingerprint set figures: bytes per identifier (file and resident), load time of 10
million identifiers, build time of a 1-million-row register (CSV, and XLSX at 100k rows).

The 10-million-entry file is written directly from random numpy digests (building it
from a register would only measure HMAC speed again); the 1M-row register is made of
fictional patients (leaksentry.synth). Prints figures only, never an identifier.

    python bench/bench_fingerprints.py [--load-n 10000000] [--build-rows 1000000]
"""

from __future__ import annotations

import argparse
import csv
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine_speed, report, rss_bytes

from leaksentry import synth
from pipelines.match import build_fingerprints
from pipelines.match.fpfile import FingerprintSet, write_fingerprints


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--load-n", type=int, default=10_000_000)
    ap.add_argument("--build-rows", type=int, default=1_000_000)
    ap.add_argument("--xlsx-rows", type=int, default=100_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_fp"))
    key = os.urandom(32)
    rows: list[tuple[str, str]] = []

    # -- load of N identifiers ---------------------------------------------------------------
    n = args.load_n
    rng = np.random.default_rng(3)
    digests = rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)
    meta = np.arange(1, n + 1, dtype=np.uint32)
    write_fingerprints(tmp / "big.fp", key, digests, meta, ["hkid", "hn"], [n, 0], n_records=n)
    queries = digests[rng.integers(0, n, size=200_000)]
    del digests, meta
    gc.collect()
    size = (tmp / "big.fp").stat().st_size
    loads = []
    for _ in range(3):
        t = time.perf_counter()
        fp = FingerprintSet(tmp / "big.fp", key)
        loads.append(time.perf_counter() - t)
        del fp
    t = time.perf_counter()
    fp_nomac = FingerprintSet(tmp / "big.fp", key, verify=False)
    load_nomac = time.perf_counter() - t
    del fp_nomac
    gc.collect()
    rss0 = rss_bytes()
    fp = FingerprintSet(tmp / "big.fp", key)
    rss_loaded = rss_bytes() - rss0
    t = time.perf_counter()
    found, _ = fp.lookup(np.sort(queries))
    lookup_s = time.perf_counter() - t
    assert found.all()
    fp.meta[:].sum()  # touch every page, as a worst case
    rss_touched = rss_bytes() - rss0
    rows += [
        (f"file size, {n:,} identifiers",
         f"{size / 1e6:,.0f} MB = {size / n:.2f} bytes/identifier"),
        ("load (mmap + header + HMAC integrity check)",
         f"{min(loads):.2f} s best of 3 ({', '.join(f'{x:.2f}' for x in loads)})"),
        ("load without the integrity check", f"{load_nomac:.3f} s"),
        ("resident after load (the MAC pass maps the file, pages are shared page cache)",
         f"{rss_loaded / n:.2f} bytes/identifier"),
        ("resident after touching every page (worst case)",
         f"{rss_touched / n:.2f} bytes/identifier"),
        ("200k sorted lookups (numpy searchsorted)", f"{lookup_s * 1000:.0f} ms"),
    ]
    del fp, found
    (tmp / "big.fp").unlink()

    # -- build of a register -----------------------------------------------------------------
    reg = tmp / "register.csv"
    t = time.perf_counter()
    with open(reg, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(synth.register_rows(args.build_rows, seed=1))
    gen_s = time.perf_counter() - t
    (tmp / "key").write_bytes(key)
    c, t = time.process_time(), time.perf_counter()
    rep = build_fingerprints(reg, key, tmp / "reg.fp", hkid_column="hkid", hn_column="hn")
    build_s, build_cpu = time.perf_counter() - t, time.process_time() - c
    rows += [
        (f"build, {args.build_rows:,}-row CSV register ({rep.identifiers:,} identifiers)",
         f"{build_s:.1f} s wall, {build_cpu:.1f} s CPU (register generated in {gen_s:.0f} s)"),
    ]
    reg.unlink()
    if args.xlsx_rows:
        import xlsxwriter

        xreg = tmp / "register.xlsx"
        wb = xlsxwriter.Workbook(str(xreg), {"constant_memory": True})
        ws = wb.add_worksheet()
        for i, row in enumerate(synth.register_rows(args.xlsx_rows, seed=2)):
            ws.write_row(i, 0, row)
        wb.close()
        c, t = time.process_time(), time.perf_counter()
        rep = build_fingerprints(xreg, key, tmp / "xreg.fp", hkid_column="hkid", hn_column="hn")
        rows.append((f"build, {args.xlsx_rows:,}-row XLSX register",
                     f"{time.perf_counter() - t:.1f} s wall, {time.process_time() - c:.1f} s CPU"))
    rows += [
        ("machine speed: 10M empty Python loop iterations", f"{machine_speed():.2f} s CPU "
         "(about 0.2 s on an idle core)"),
        ("load average", Path("/proc/loadavg").read_text().split()[0]),
        ("targets", "<= 16 bytes/identifier, load of 10M <= 1 s, build of 1M rows <= 10 s"),
    ]
    print("bench_fingerprints:")
    report(rows)


if __name__ == "__main__":
    main()
