"""Scan throughput: ~100 MB of mixed English/Chinese text, one HKID-shaped token per
~2 KB, 10 million fingerprints loaded; against a naive baseline (Python ``re`` +
``hmac`` per candidate + a Python ``set`` of digests) measured in the same run.

The 10 million fingerprints are random 64-bit digests made with numpy (the lookup
cost is what matters), plus the real keyed digests of 2,000 fictional patients so
that there is something to find. Prints figures only, never an identifier.

    python bench/bench_scan.py [--mb 100] [--fingerprints 10000000] [--baseline-mb 20]

The headline scans the documents as UTF-8 bytes, the form plain text arrives in (the
plain-text extractor hands such parts to the matcher as they are); str parts, the
plain-text extractor, the pure-Python path and one 100 MB part are measured in the
same run on the same documents.
"""

from __future__ import annotations

import argparse
import hmac
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import fmt_rate, machine_speed, mixed_text, report, rss_bytes, token_source

from leaksentry import synth
from pipelines.match import Matcher
from pipelines.match.digest import Digester
from pipelines.match.finder import HAVE_HYPERSCAN
from pipelines.match.fpfile import FingerprintSet, write_fingerprints
from pipelines.model import TextPart

NAIVE = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{1,2})\s?(\d{6})\s?\(?([0-9Aa])\)?(?![A-Za-z0-9])")


def naive_scan(text: str, key: bytes, digests: set[int]) -> tuple[int, int]:
    """What one writes first: regex, check digit, HMAC per candidate, set lookup."""
    from leaksentry.identifiers.hkid import is_valid_canonical

    found = unmatched = 0
    for m in NAIVE.finditer(text):
        canonical = (m.group(1) + m.group(2) + m.group(3)).upper()
        if not is_valid_canonical(canonical):
            continue
        d = int.from_bytes(hmac.new(key, b"hkid:" + canonical.encode(), "sha256").digest()[:8],
                           "big")
        if d in digests:
            found += 1
        else:
            unmatched += 1
    return found, unmatched


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--fingerprints", type=int, default=10_000_000)
    ap.add_argument("--baseline-mb", type=int, default=20,
                    help="the baseline runs on this much of the text (it is slow)")
    ap.add_argument("--doc-mb", type=float, default=1.0, help="document size for the scan")
    ap.add_argument("--repeat", type=int, default=3, help="runs of the headline scan")
    args = ap.parse_args()

    key = os.urandom(32)
    registered = [p.hkid for p in synth.patients(2000, seed=5)]
    dg = Digester(key)
    rng = np.random.default_rng(7)
    n = args.fingerprints
    digests = rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)
    digests[: len(registered)] = [dg.digest64(b"hkid:" + h.encode()) for h in registered]
    meta = np.arange(1, n + 1, dtype=np.uint32)
    tmp = Path(tempfile.mkdtemp(prefix="bench_scan"))
    (tmp / "key").write_bytes(key)
    os.chmod(tmp / "key", 0o600)
    write_fingerprints(tmp / "fp", key, digests, meta, ["hkid", "hn"], [n, 0], n_records=n)
    del digests, meta

    text = mixed_text(args.mb * 1_000_000, 2000, token_source(registered))
    nbytes = len(text.encode())
    per_doc = int(args.doc_mb * 1_000_000 * len(text) / nbytes)  # characters per document
    docs = [text[i:i + per_doc] for i in range(0, len(text), per_doc)]

    t = time.perf_counter()
    matcher = Matcher.load(tmp / "key", tmp / "fp")
    load_s = time.perf_counter() - t
    bdocs = [doc.encode("utf-8") for doc in docs]  # the documents as they arrive: UTF-8 bytes

    # first scan: page faults on the mapping, hyperscan scratch, the HKID check table
    t = time.perf_counter()
    matcher.scan([TextPart(bdocs[0], "warm-up.txt")])
    first_s = time.perf_counter() - t

    def summary(r) -> tuple:
        """What a run is compared by; whole results are not kept, as a daemon would not
        keep them (14,000 live Match objects per run would slow the collector down for
        every later measurement in this process)."""
        return (r.matched_records, tuple(r.record_refs), sum(m.count for m in r.matches),
                r.unmatched_valid.get("hkid", 0), tuple(m.masked for m in r.matches[:3]))

    def run(m: Matcher, items: list, label: str) -> tuple[float, float, list]:
        out = []
        c0, t0 = time.process_time(), time.perf_counter()
        for item in items:
            out.append(summary(m.scan([TextPart(item, label)])))
        return time.perf_counter() - t0, time.process_time() - c0, out

    # the headline: documents as UTF-8 bytes (plain text as read or fetched); three runs,
    # the median reported (a shared 2-core VM varies from minute to minute)
    runs = sorted((run(matcher, bdocs, "bench.txt") for _ in range(args.repeat)),
                  key=lambda r: r[1])
    wall, cpu, results = runs[len(runs) // 2]
    best_cpu = runs[0][1]
    del runs
    matched = sum(r[0] for r in results)
    occurrences = sum(r[2] for r in results)
    unmatched = sum(r[3] for r in results)
    # the same documents as str (what decoding extractors such as HTML or JSON hand over)
    swall, scpu, sresults = run(matcher, docs, "bench.txt")
    assert sresults == results
    # through the plain-text extractor, as `leaksentry scan FILE` and the crawler do
    from leaksentry.config.extract import ExtractConfig
    from pipelines.process import scan_inline

    xcfg = ExtractConfig()
    scan_inline(bdocs[0], "warm-up.txt", matcher, xcfg)  # imports the extractors' modules
    c4, t4 = time.process_time(), time.perf_counter()
    xresults = [summary(scan_inline(b, "paste.txt", matcher, xcfg)) for b in bdocs]
    xwall, xcpu = time.perf_counter() - t4, time.process_time() - c4
    assert xresults == results
    # the pure-Python path (the C speedups switched off), same documents
    py = Matcher.load(tmp / "key", tmp / "fp", speedups=False)
    py.scan([TextPart(bdocs[0], "warm-up.txt")])
    pwall, pcpu, presults = run(py, bdocs, "bench.txt")
    assert presults == results

    # the same text as one big part
    whole = text.encode("utf-8")
    c1, t1 = time.process_time(), time.perf_counter()
    matcher.scan([TextPart(whole)])
    wall1, cpu1 = time.perf_counter() - t1, time.process_time() - c1
    del whole

    # floors: the UTF-8 encoding a str part needs, and hyperscan's bare passes
    c3 = time.process_time()
    for doc in docs:
        doc.encode("utf-8", "replace")
    enc_cpu = time.process_time() - c3
    hs_full = hs_narrow = float("nan")
    finder = matcher.finder
    if matcher.engine == "hyperscan":
        c3 = time.process_time()
        for b in bdocs:
            finder._db.scan(b, scratch=finder._scratch(finder._db))
        hs_full = time.process_time() - c3
        if finder._narrow_db is not None:
            c3 = time.process_time()
            for b in bdocs:
                finder._narrow_db.scan(b, scratch=finder._scratch(finder._narrow_db))
            hs_narrow = time.process_time() - c3

    # naive baseline on a prefix of the same text (it is ~10x slower)
    base_text = text[: args.baseline_mb * 1_000_000 // 2]
    base_bytes = len(base_text.encode())
    fp = FingerprintSet(tmp / "fp", key)
    t = time.perf_counter()
    digest_set = set(fp.digests.tolist())
    set_s = time.perf_counter() - t
    c2, t2 = time.process_time(), time.perf_counter()
    b_found, _ = naive_scan(base_text, key, digest_set)
    bwall, bcpu = time.perf_counter() - t2, time.process_time() - c2
    ours_rate = nbytes / wall
    base_rate = base_bytes / bwall
    path = "C speedups" if matcher.accelerated else "pure Python (C speedups not built)"

    print(f"bench_scan: {nbytes / 1e6:.0f} MB mixed English/Chinese text, one HKID-shaped token"
          f" per ~2 KB, {n:,} fingerprints (random numpy digests + 2,000 real keyed ones)")
    report([
        ("engine", matcher.engine + ("" if HAVE_HYPERSCAN else " (hyperscan not installed)")
         + f", {path}"),
        ("load (mmap + integrity check)", f"{load_s:.2f} s"),
        (f"first scan of {args.doc_mb:g} MB (warm-up, not counted)", f"{first_s:.2f} s"),
        (f"scan, {len(docs)} documents of {args.doc_mb:g} MB as UTF-8 bytes "
         f"(median of {args.repeat})",
         f"{fmt_rate(nbytes, wall)} wall, {fmt_rate(nbytes, cpu)} CPU "
         f"(best {fmt_rate(nbytes, best_cpu)} CPU)"),
        ("  the same documents as str parts",
         f"{fmt_rate(nbytes, swall)} wall, {fmt_rate(nbytes, scpu)} CPU"),
        ("  the same through the plain-text extractor",
         f"{fmt_rate(nbytes, xwall)} wall, {fmt_rate(nbytes, xcpu)} CPU"),
        ("  the same, pure-Python path",
         f"{fmt_rate(nbytes, pwall)} wall, {fmt_rate(nbytes, pcpu)} CPU"),
        (f"scan, one {nbytes / 1e6:.0f} MB part (bytes)",
         f"{fmt_rate(nbytes, wall1)} wall, {fmt_rate(nbytes, cpu1)} CPU"),
        ("floors (CPU): encoding str parts / hyperscan full / narrow patterns",
         f"{fmt_rate(nbytes, enc_cpu)} / {fmt_rate(nbytes, hs_full)} / "
         f"{fmt_rate(nbytes, hs_narrow)}"),
        ("matched occurrences / distinct records", f"{occurrences:,} / {matched:,}"),
        ("valid HKIDs not in register (distinct, summed per doc)", f"{unmatched:,}"),
        (f"naive baseline on {base_bytes / 1e6:.0f} MB", f"{fmt_rate(base_bytes, bwall)} wall, "
         f"{fmt_rate(base_bytes, bcpu)} CPU ({b_found:,} matched; building its set of "
         f"{n:,} ints took {set_s:.1f} s)"),
        ("ratio (ours / naive, wall)", f"{ours_rate / base_rate:.1f}x"),
        ("ratio (ours / naive, CPU)", f"{(nbytes / cpu) / (base_bytes / bcpu):.1f}x"),
        ("ratio (str parts / naive, CPU)", f"{(nbytes / scpu) / (base_bytes / bcpu):.1f}x"),
        ("resident set size (text, copies, the baseline's set)", f"{rss_bytes() / 1e6:,.0f} MB"),
        ("machine speed: 10M empty Python loop iterations",
         f"{machine_speed():.2f} s CPU (about 0.2 s on an idle core)"),
        ("load average", Path("/proc/loadavg").read_text().split()[0]),
        ("target", ">= 300 MB/s with hyperscan on one core (issue 2): "
         + ("met" if nbytes / cpu / 1e6 >= 300 else "not met") + " (bytes documents, CPU)"),
    ])


if __name__ == "__main__":
    main()
