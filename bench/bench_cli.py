"""Whole-process figures of the CLI, as a user sees them (issue 18): start-up of
`--version` and `--help`, `scan` of a 10 kB file and `scan --json` of one 100 MB mixed
English/Chinese text file against a 1 M-row register, and a crawl subprocess's fixed
cost (process start to its first request). Each command is a real process, timed from
outside, several runs, best and median printed; the naive baseline (a Python script:
``re`` + ``hmac`` per candidate + a ``set`` of the register's digests; a second one
NFKC-normalises the text first, to find the full-width forms the scanner finds) runs in
turn with ``scan --json`` in the same run, and the ratio is taken pair by pair.

    python bench/bench_cli.py [--rows 1000000] [--mb 100] [--runs 5]
                              [--baseline-tree DIR] [--skip-crawl]

``--baseline-tree DIR``: a checkout of another revision (e.g. ``git archive main``,
its C extension copied in); its commands run with ``PYTHONPATH=DIR`` beside this
tree's, for before/after figures in one run. The register, key, fingerprints and text
are generated once (leaksentry.synth) into ``--dir`` and reused. Prints figures only,
never an identifier.
"""

from __future__ import annotations

import argparse
import csv
import hmac
import http.server
import itertools
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine_speed, mixed_text, report, token_source

REPO = Path(__file__).resolve().parent.parent
NAIVE = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{1,2})\s?(\d{6})\s?\(?([0-9Aa])\)?(?![A-Za-z0-9])")


def naive_main(key_path: str, fp_path: str, text_path: str, nfkc: bool = False) -> None:
    """The baseline as one writes it first: the register's digests in a set, the file
    read and decoded, a regex, the check digit, one HMAC per candidate. ``nfkc``: the
    text is NFKC-normalised first, so that full-width forms (``Ａ１２３４５６（３）``),
    which the scanner finds, are found too."""
    from leaksentry.identifiers.hkid import is_valid_canonical
    from pipelines.match.fpfile import FingerprintSet

    key = Path(key_path).read_bytes()
    digests = set(FingerprintSet(fp_path, key).digests.tolist())
    text = Path(text_path).read_text(encoding="utf-8")
    if nfkc:
        text = unicodedata.normalize("NFKC", text)
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
    print(found, unmatched)


def prepare(d: Path, rows: int, mb: int) -> dict[str, Path]:
    """Key, 1 M-row fingerprints, the 100 MB text and a 10 kB file (made once)."""
    from leaksentry import synth
    from pipelines.match import build_fingerprints, generate_key, read_key

    d.mkdir(parents=True, exist_ok=True)
    files = {"key": d / "key", "fp": d / "register.lsfp", "big": d / f"mixed-{mb}mb.txt",
             "small": d / "small-10kb.txt"}
    if not files["fp"].exists():
        if not files["key"].exists():
            generate_key(files["key"])
        reg = d / "register.csv"
        with reg.open("w", newline="") as f:
            csv.writer(f).writerows(synth.register_rows(rows, seed=3))
        build_fingerprints(reg, read_key(files["key"]), files["fp"], hkid_column="hkid",
                           hn_column="hn", ref_column="ref")
        reg.unlink()
    if not files["big"].exists() or not files["small"].exists():
        registered = [p.hkid for p in itertools.islice(synth.patients(rows, seed=3), 2000)]
        text = mixed_text(mb * 1_000_000, 2000, token_source(registered))
        files["big"].write_text(text, encoding="utf-8")
        files["small"].write_text(mixed_text(10_000, 2000, token_source(registered), seed=2),
                                  encoding="utf-8")
    return files


#: commands run here: `python -m` puts the working directory first on sys.path, which
#: must not be a checkout (it would shadow PYTHONPATH)
NEUTRAL_CWD = tempfile.gettempdir()


def timed_run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall, cpu of the process and its children, exit code) of one whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                          check=False, cwd=NEUTRAL_CWD)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.returncode


def side_by_side(cmds: dict[str, tuple[list[str], dict[str, str]]], runs: int
                 ) -> dict[str, list[tuple[float, float, int]]]:
    """Every command once per round (one warm-up round first), in turn."""
    out: dict[str, list[tuple[float, float, int]]] = {k: [] for k in cmds}
    for r in range(runs + 1):
        for name, (cmd, env) in cmds.items():
            res = timed_run(cmd, env)
            if r:
                out[name].append(res)
    return out


def fmt(results: list[tuple[float, float, int]]) -> str:
    walls = [w for w, _, _ in results]
    cpus = [c for _, c, _ in results]
    codes = sorted({c for _, _, c in results})
    return (f"best {min(walls):.3f} s, median {statistics.median(walls):.3f} s wall; "
            f"median {statistics.median(cpus):.3f} s CPU (exit {','.join(map(str, codes))})")


def pair_ratio(a: list[tuple[float, float, int]], b: list[tuple[float, float, int]]) -> str:
    ratios = sorted(bw / aw for (aw, _, _), (bw, _, _) in zip(a, b, strict=True))
    return (f"{statistics.median(ratios):.1f}x median (pairs {ratios[0]:.1f}x .. "
            f"{ratios[-1]:.1f}x)")


class _FirstRequest(http.server.BaseHTTPRequestHandler):
    first: ClassVar[list[float]] = []

    def do_GET(self) -> None:
        type(self).first.append(time.perf_counter())
        body = b"nothing to see here\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def crawl_fixed_cost(files: dict[str, Path], runs: int, envs: dict[str, dict[str, str]]
                     ) -> dict[str, list[float]]:
    """Seconds from starting `leaksentry crawl` to its first request reaching a loopback
    server, per tree."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FirstRequest)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    out: dict[str, list[float]] = {k: [] for k in envs}
    with tempfile.TemporaryDirectory(prefix="bench_cli_crawl") as tmp:
        configs = {}
        for i, name in enumerate(envs):  # a state dir per tree: their schemas may differ
            cfg = configs[name] = Path(tmp) / f"leaksentry-{i}.toml"
            cfg.write_text(
                f'[state]\ndir = "{tmp}/state-{i}"\n\n[matching]\nkey = "{files["key"]}"\n'
                f'fingerprints = "{files["fp"]}"\n\n[[sources]]\nname = "bench"\n'
                f'kind = "watch"\nurl = "http://127.0.0.1:{port}/item"\nevery = "1h"\n'
                f'allow_private = true\nobey_robots = false\n')
        for r in range(runs + 1):
            for name, env in envs.items():
                _FirstRequest.first.clear()
                t = time.perf_counter()
                subprocess.run([sys.executable, "-m", "leaksentry", "crawl", "bench",
                                "--config", str(configs[name])], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=env, check=False, timeout=120,
                               cwd=NEUTRAL_CWD)
                if r and _FirstRequest.first:
                    out[name].append(_FirstRequest.first[0] - t)
    server.shutdown()
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("naive", "naive-nfkc"):
        naive_main(*sys.argv[2:5], nfkc=sys.argv[1] == "naive-nfkc")
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--baseline-tree", type=Path, default=None,
                    help="another checkout, run with PYTHONPATH=DIR beside this one")
    ap.add_argument("--skip-crawl", action="store_true")
    args = ap.parse_args()
    d = args.dir or Path(tempfile.gettempdir()) / f"leaksentry-bench-cli-{args.rows}-{args.mb}"
    t = time.perf_counter()
    files = prepare(d, args.rows, args.mb)
    prep_s = time.perf_counter() - t
    load_before = Path("/proc/loadavg").read_text().split()[0]

    home = tempfile.mkdtemp(prefix="bench_cli_home")
    base_env = {k: v for k, v in os.environ.items() if k not in ("LEAKSENTRY_CONFIG",
                                                               "PYTHONPATH")}
    base_env["LEAKSENTRY_HOME"] = home
    trees: dict[str, dict[str, str]] = {"this tree": {**base_env, "PYTHONPATH": str(REPO)}}
    if args.baseline_tree is not None:
        trees["baseline tree"] = {**base_env, "PYTHONPATH": str(args.baseline_tree.resolve())}
    py = sys.executable
    key, fp = str(files["key"]), str(files["fp"])

    def cli(*a: str) -> list[str]:
        return [py, "-m", "leaksentry", *a]

    rows: list[tuple[str, object]] = []
    cases: list[tuple[str, Callable[[], list[str]]]] = [
        ("--version", lambda: cli("--version")),
        ("--help", lambda: cli("--help")),
        ("scan of a 10 kB file", lambda: cli("scan", "--key", key, "--fingerprints", fp,
                                             str(files["small"]))),
    ]
    for label, make in cases:
        res = side_by_side({t: (make(), env) for t, env in trees.items()}, args.runs)
        for tree, r in res.items():
            rows.append((f"{label} [{tree}]", fmt(r)))
        if len(res) == 2:
            rows.append((f"{label}: baseline tree / this tree", pair_ratio(*res.values())))

    size_mb = files["big"].stat().st_size / 1e6
    big = {f"scan --json [{t}]": (cli("scan", "--json", "--key", key, "--fingerprints", fp,
                                      str(files["big"])), env) for t, env in trees.items()}
    naive = {"naive baseline": "naive",
             "naive baseline, full-width forms too (NFKC first)": "naive-nfkc"}
    for label, mode in naive.items():
        big[label] = ([py, str(Path(__file__).resolve()), mode, key, fp, str(files["big"])],
                      trees["this tree"])
    res = side_by_side(big, args.runs)
    for name, r in res.items():
        rows.append((f"{name}, {size_mb:.0f} MB file", fmt(r)))
    for label in naive:
        for tree in trees:
            rows.append((f"{label} / scan --json [{tree}]",
                         pair_ratio(res[f"scan --json [{tree}]"], res[label])))

    if not args.skip_crawl:
        crawl = crawl_fixed_cost(files, args.runs, trees)
        for tree, secs in crawl.items():
            if secs:
                rows.append((f"crawl: process start to first request [{tree}]",
                             f"best {min(secs):.3f} s, median {statistics.median(secs):.3f} s"))
            else:
                rows.append((f"crawl: process start to first request [{tree}]",
                             "no request arrived"))

    print(f"bench_cli: whole processes, best/median of {args.runs} runs after a warm-up; "
          f"{args.rows:,}-row register, {size_mb:.0f} MB mixed English/Chinese text "
          f"(inputs made in {prep_s:.0f} s, reused from {d})")
    report([
        *rows,
        ("load average before / after", f"{load_before} / "
         f"{Path('/proc/loadavg').read_text().split()[0]}"),
        ("machine speed: 10M empty Python loop iterations",
         f"{machine_speed():.2f} s CPU (about 0.2 s on an idle core)"),
        ("targets (issue 18)", "--version, --help <= 0.25 s; scan 10 kB <= 0.5 s; "
         "scan --json 100 MB >= 10x the naive baseline"),
    ])


if __name__ == "__main__":
    main()
