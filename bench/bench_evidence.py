"""After the alert: the evidence vault and the notification report.

Figures printed (targets from the issue):

- vault: MB/s to encrypt hit documents with age and keep them (Vault.keep: encrypt,
  hash, fsync, rename, index row) on one core, beside bare pyrage encryption into memory
  in the same run (target >= 200 MB/s);
- crawl throughput with the vault on (every hit kept) vs off, on the loopback directory
  of bench_crawl.py: alternating runs, each a real `leaksentry crawl` process
  (target: within 10 %);
- notify: `leaksentry notify` as a whole process joining 56,000 affected records to a
  1,000,000-row register, with the fingerprint check, writing XLSX (target <= 5 s).

Usage: .venv/bin/python bench/bench_evidence.py [--files 3000] [--skip-crawl]
Everything is fictional (leaksentry.synth); nothing printed is an identifier.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyrage

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from _common import machine_speed  # noqa: E402
from bench_crawl import _config, _crawl, _dir_source, _fingerprints, _serve, _tree  # noqa: E402

from leaksentry.config import load_config  # noqa: E402
from leaksentry.config.toml import dumps  # noqa: E402
from leaksentry.store import Store  # noqa: E402
from leaksentry.synth import register_rows  # noqa: E402


def bench_vault(tmp: Path) -> None:
    from pipelines.match import generate_key
    from pipelines.model import Document, Finding, ScanResult
    from pipelines.sinks.vault import Vault

    ident = pyrage.x25519.Identity.generate()
    generate_key(tmp / "vkey")
    (tmp / "vault.toml").write_text(dumps({
        "state": {"dir": str(tmp / "vstate")}, "matching": {"key": str(tmp / "vkey")},
        "evidence": {"recipients": [str(ident.to_public())], "max_bytes": 64 << 20}}))
    settings = load_config(tmp / "vault.toml")
    vault = Vault.from_settings(settings)
    assert vault is not None
    store = Store(settings.state.db)
    docs = [(b"patient export line, nothing real %d\n" % i) * ((32 << 20) // 40)
            for i in range(8)]
    total = sum(len(d) for d in docs) / 1e6
    t = time.process_time()
    for d in docs:
        out = io.BytesIO()
        pyrage.encrypt_io(io.BytesIO(d), out, [ident.to_public()])
    bare = total / (time.process_time() - t)
    t, w = time.process_time(), time.perf_counter()
    for i, d in enumerate(docs, start=1):
        finding = Finding.of(Document(url=f"https://files.example/{i}.csv", source="b",
                                      content=d), ScanResult(severity="critical"))
        with store.transaction() as tx:
            info = vault.keep(tx, i, d, finding)
            assert info.stored
    kept_cpu = total / (time.process_time() - t)
    kept_wall = total / (time.perf_counter() - w)
    print(f"vault: {len(docs)} documents, {total:.0f} MB: kept at {kept_cpu:.0f} MB/s CPU"
          f" ({kept_wall:.0f} MB/s wall, with fsync) vs bare pyrage into memory"
          f" {bare:.0f} MB/s; target >= 200 MB/s: {'met' if kept_cpu >= 200 else 'NOT met'}")
    store.close()


def bench_crawl_with_vault(tmp: Path, files: int, matching: dict[str, str]) -> None:
    root = tmp / "tree"
    root.mkdir()
    planted = _tree(root, files)
    ident = pyrage.x25519.Identity.generate()
    with _serve(root, tmp) as (url, server):
        rates: dict[bool, list[float]] = {False: [], True: []}
        for rnd in range(2):
            for on in (False, True):
                state = tmp / f"cstate-{rnd}-{on}"
                cfg = tmp / f"c-{rnd}-{on}.toml"
                _config(cfg, state, _dir_source(url, 16, 1), matching)
                if on:
                    with cfg.open("a") as fh:
                        fh.write(f'\n[evidence]\nrecipients = ["{ident.to_public()}"]\n'
                                 'min_severity = "low"\n')
                run, _ = _crawl(cfg, state, "dir", scan=True, doclog=tmp / "x.jsonl")
                if run["new"] != files:
                    raise SystemExit(f"crawl: {run['new']} of {files} documents")
                if on:
                    kept = len(list((state / "evidence").glob("*.age")))
                    if kept != run["hits"]:
                        raise SystemExit(f"vault kept {kept} of {run['hits']} hits")
                rates[on].append(run["new"] / run["duration"])
        off, on = max(rates[False]), max(rates[True])
        print(f"crawl ({files} files, {planted} hits, {server}, processes = 1, best of 2):"
              f" vault off {off:.0f} docs/s, vault on (every hit kept) {on:.0f} docs/s:"
              f" {on / off:.2f}x; target within 10 %: {'met' if on >= 0.9 * off else 'NOT met'}")


def bench_notify(tmp: Path, rows: int = 1_000_000, affected: int = 56_000) -> None:
    from pipelines.match import build_fingerprints, generate_key, read_key

    reg = tmp / "register.csv"
    with reg.open("w", newline="") as fh:
        csv.writer(fh).writerows(register_rows(rows, seed=11))
    generate_key(tmp / "nkey")
    t = time.perf_counter()
    build_fingerprints(reg, read_key(tmp / "nkey"), tmp / "nfp", ref_column="ref",
                       hkid_column="hkid", hn_column="hn")
    build = time.perf_counter() - t
    step = rows // affected  # affected rows spread over the whole register (read to its end)
    with reg.open(newline="") as fh:
        rdr = csv.reader(fh)
        next(rdr)
        refs = [row[0] for i, row in enumerate(rdr) if i % step == step - 1][:affected]
    hits = [{"hit_id": 1, "source": "bench", "url": "https://files.example/export.xlsx",
             "first_seen": "2026-12-01T00:00:00+00:00", "severity": "critical",
             "record_refs": refs,
             "matches": [{"kind": k, "record_ref": r} for r in refs for k in ("hkid", "hn")]},
            {"hit_id": 2, "source": "bench2", "url": "https://paste.example/raw/x",
             "first_seen": "2026-12-02T00:00:00+00:00", "severity": "high",
             "record_refs": refs[:500],
             "matches": [{"kind": "hkid", "record_ref": r} for r in refs[:500]]}]
    (tmp / "hits.jsonl").write_text("".join(json.dumps(h) + "\n" for h in hits))
    best = None
    for _ in range(3):
        out = tmp / "notify.xlsx"
        if out.exists():
            out.unlink()
        t = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "leaksentry", "notify", "--register",
                            str(reg), "--ref-column", "ref", "--include", "name,gender",
                            "--hits", str(tmp / "hits.jsonl"), "--key", str(tmp / "nkey"),
                            "--fingerprints", str(tmp / "nfp"), "--out", str(out)],
                           capture_output=True, text=True, timeout=600)
        wall = time.perf_counter() - t
        if p.returncode != 0:
            raise SystemExit(f"notify failed: {p.stderr.strip()[-500:]}")
        best = wall if best is None else min(best, wall)
    assert best is not None
    print(f"notify: {affected:,} affected records from a {rows:,}-row register (CSV), with"
          f" the fingerprint check, to XLSX: {best:.2f} s whole process (best of 3;"
          f" fingerprint build {build:.1f} s not included); target <= 5 s:"
          f" {'met' if best <= 5 else 'NOT met'}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=3000)
    ap.add_argument("--skip-crawl", action="store_true")
    args = ap.parse_args()
    print(f"machine: {machine_speed():.2f} s CPU per 10M empty loop iterations;"
          f" load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="bench-evidence-") as d:
        tmp = Path(d)
        bench_vault(tmp)
        if not args.skip_crawl:
            fp = tmp / "fp"
            fp.mkdir()
            bench_crawl_with_vault(tmp, args.files, _fingerprints(fp))
        bench_notify(tmp)


if __name__ == "__main__":
    main()
