"""Pages per second through Chromium for a rendered listing (target: >= 5 pages/s).

A loopback site (tests/crawler/servers/js_listing.py) lists N items whose links
and contents are written by JavaScript; ``leaksentry crawl`` renders the
listing and every item page with Debian's Chromium through scrapy-playwright
(resource blocking on, pages closed by the handler). Each crawl is a real
subprocess, as in production.

Figures printed:
- overall: (N + 1 pages) / crawl duration, browser start included;
- marginal: extra pages / extra seconds between a small and a large listing,
  i.e. the steady rate once the browser runs (what the target is about);
- CPU per extra page for the whole crawl process tree (Python, the Playwright
  driver, Chromium), and the capacity it implies on idle cores: the wall-clock
  rate on a shared machine depends on what else runs;
- baseline: the same pages fetched without a browser (the listing's rows
  written server-side), overall rate, and the render/baseline ratio.

Usage: .venv/bin/python bench/bench_render.py [--items 60] [--concurrency 8]
No identifiers are used: item bodies are filler text.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "crawler"))

from servers.js_listing import JsListingSite  # noqa: E402


def _crawl(root: Path, site_url: str, *, render: bool, concurrency: int) -> dict:
    state = root / "state"
    lines = [
        "[state]", f"dir = {json.dumps(str(state))}", "",
        "[[sources]]", 'name = "bench"', 'kind = "listing"',
        f"url = {json.dumps(site_url + '/list')}",
        'link_css = "table.recent a.paste"', 'id_regex = "/item/([a-z0-9]+)$"',
        "allow_private = true", "obey_robots = false", f"concurrency = {concurrency}",
        'timeout = "10m"',
    ]
    if render:
        lines += ["render = true", 'wait_selector = "a.paste"',
                  'item_wait_selector = "pre.ready"']
    cfg = root / "bench.toml"
    cfg.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = dict(os.environ, LEAKSENTRY_HOME=str(state))
    proc = subprocess.run([sys.executable, "-m", "leaksentry", "crawl", "bench", "--config",
                           str(cfg), "--json", "-s",
                           "LEAKSENTRY_PROCESSOR=crawler.pipelines.DocLogProcessor", "-s",
                           f"LEAKSENTRY_DOCLOG={root / 'docs.jsonl'}"], capture_output=True,
                          text=True, env=env, cwd=root, timeout=900)
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            return json.loads(line)
    raise SystemExit(f"crawl failed: {proc.stderr[-1500:]}")


def _items(n: int) -> dict[str, tuple[str, str]]:
    filler = "lorem ipsum dolor sit amet " * 40
    return {f"b{i:05d}x": (f"item {i}", f"{filler}\n{i}\n") for i in range(n)}


def _child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def measure(n: int, *, render: bool, concurrency: int) -> tuple[int, float, float]:
    """(pages fetched, crawl seconds, CPU seconds of the crawl's whole process tree:
    Python, the Playwright driver and Chromium) for a listing of ``n`` items."""
    # the baseline gets the same pages with the rows written into the listing's HTML
    with JsListingSite(_items(n), delay_ms=20, static_listing=not render) as site, \
            tempfile.TemporaryDirectory() as tmp:
        cpu0 = _child_cpu()
        run = _crawl(Path(tmp), site.url, render=render, concurrency=concurrency)
        cpu = _child_cpu() - cpu0
        if run["outcome"] != "ok" or run["fetched"] != n:
            raise SystemExit(f"unexpected run: {run}")
        return n + 1, float(run["duration"]), cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=60)
    ap.add_argument("--small", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()

    load = os.getloadavg()[0]
    small_p, small_s, small_cpu = measure(args.small, render=True, concurrency=args.concurrency)
    big_p, big_s, big_cpu = measure(args.items, render=True, concurrency=args.concurrency)
    marginal = (big_p - small_p) / max(big_s - small_s, 1e-6)
    cpu_per_page = (big_cpu - small_cpu) / (big_p - small_p)
    print(f"render: {big_p} pages in {big_s:.2f}s = {big_p / big_s:.1f} pages/s overall "
          f"(browser start included)")
    print(f"render: marginal {marginal:.1f} pages/s "
          f"({big_p - small_p} extra pages in {big_s - small_s:.2f}s; target >= 5)")
    cores = os.cpu_count() or 1
    print(f"render: {cpu_per_page * 1000:.0f} ms CPU per extra page (driver + Chromium + "
          f"Python): capacity {cores / cpu_per_page:.1f} pages/s on {cores} idle cores")
    base_p, base_s, _ = measure(args.items, render=False, concurrency=args.concurrency)
    base = base_p / base_s
    print(f"baseline (same pages over plain HTTP, no browser): {base_p} pages in {base_s:.2f}s"
          f" = {base:.1f} pages/s overall; render marginal/baseline = {marginal / base:.2f}")
    print(f"cpu cores: {os.cpu_count()}, load average: {load:.1f} at start, "
          f"{os.getloadavg()[0]:.1f} at end (other work on the machine slows the wall figures)")


if __name__ == "__main__":
    main()
