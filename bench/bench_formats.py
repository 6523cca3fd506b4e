"""Recall and cost of this round's formats (issue 13): a 200-row SQLite table (python's
sqlite3), the 50-row Word 97 .doc LibreOffice wrote (tests/pipelines/extract/fixtures),
and a 20,000-row SQLite table for throughput, each extracted and matched in-process
against a register whose first records were planted.

    .venv/bin/python bench/bench_formats.py [--workdir /tmp/leaksentry-bench-formats]

Everything is fictional (leaksentry.synth); the output holds counts and times only.
"""

from __future__ import annotations

import argparse
import csv
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from leaksentry.config.extract import ExtractConfig  # noqa: E402
from leaksentry.synth import patients, register_rows  # noqa: E402
from pipelines.process import scan_inline  # noqa: E402


def matcher(workdir: Path, records: int = 30_000):
    from pipelines.match import Matcher, build_fingerprints, generate_key, read_key

    workdir.mkdir(parents=True, exist_ok=True)
    register, key, fp = workdir / "register.csv", workdir / "key", workdir / "fp"
    if not fp.exists():
        with register.open("w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(register_rows(records, seed=3))
        generate_key(key)
        build_fingerprints(register, read_key(key), fp, hkid_column="hkid", hn_column="hn",
                           ref_column="ref")
    return Matcher.load(key, fp)


def sqlite_db(rows: int) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "his.db"
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE patients (id INTEGER PRIMARY KEY, name TEXT, gender TEXT,"
                     " hkid TEXT, hn TEXT, procedure TEXT)")
        conn.executemany("INSERT INTO patients (name, gender, hkid, hn, procedure)"
                         " VALUES (?,?,?,?,?)",
                         [(p.name, p.gender, p.hkid, p.hn, p.procedure)
                          for p in patients(rows, seed=3)])
        conn.commit()
        conn.close()
        return path.read_bytes()


def run(m, data: bytes, name: str, planted: int) -> None:
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        result = scan_inline(data, name, m, ExtractConfig())
        best = min(best, time.perf_counter() - t)
    found = len({r for r in result.record_refs if r.isdigit() and int(r) <= planted})
    level = len({r for r in result.record_level_refs if r.isdigit() and int(r) <= planted})
    print(f"{name}: {len(data) / 1024:.0f} KiB, status {result.status}, recall "
          f"{found / planted:.3f} ({found}/{planted}), record level {level}/{planted}, "
          f"{best * 1000:.0f} ms (best of 3), skipped {len(result.skipped)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/leaksentry-bench-formats"))
    args = ap.parse_args()
    m = matcher(args.workdir)
    run(m, sqlite_db(200), "his-200.db", 200)
    doc = ROOT / "tests/pipelines/extract/fixtures/ward50.doc"
    run(m, doc.read_bytes(), "ward50.doc", 50)
    run(m, sqlite_db(20_000), "his-20000.db", 20_000)


if __name__ == "__main__":
    main()
