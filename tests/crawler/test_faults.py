"""Hostile and broken servers: every fault is recorded, the crawl goes on, nothing hangs.

One `watch` crawl meets them all at once (the crawl must finish with the good
documents in, and each bad URL counted); malformed JSON and HTML are fed to
the kinds that parse them."""

from __future__ import annotations

import pytest
from conftest import CrawlWorkspace


@pytest.mark.slow
def test_every_fault_is_recorded_and_the_crawl_finishes(crawl_ws: CrawlWorkspace,
                                                        faults) -> None:
    from servers.faults import gzip_bomb

    faults.bomb = gzip_bomb(64 * 1024 * 1024)  # 64 MB of zeros in about 64 KB
    faults.flaky_failures = 1
    b = faults.base
    good = [f"{b}/ok.txt", f"{b}/ratelimited.txt", f"{b}/unavailable.txt", f"{b}/flaky.txt"]
    bad = [f"{b}/always500.txt", f"{b}/stall.txt", f"{b}/loop/0", f"{b}/huge.bin",
           f"{b}/bomb.txt"]
    crawl_ws.write([{"name": "hostile", "kind": "watch", "urls": good + bad,
                     "allow_private": True, "retry_max": 1, "backoff_base": 0.2,
                     "backoff_cap": 10, "download_timeout": 3, "max_redirects": 4,
                     "max_download_size": "8MB", "concurrency": 8}])
    r = crawl_ws.crawl("hostile", timeout=90)
    assert r.proc.returncode == 0, r.output  # some URLs worked: the run is ok
    run = r.run
    assert sorted(d["url"] for d in crawl_ws.docs()) == sorted(good)
    assert run["errors"] == len(bad), run
    st = run["statuses"]
    assert st.get("429") == 1 and st.get("503") == 1  # each answered once, then retried
    assert st.get("500") == 1 + 2  # flaky once; always500 twice (retry_max = 1)
    assert st.get("timeout") == 1  # the stalled body
    assert st.get("too_large") == 2  # 2 GB Content-Length, gzip bomb
    assert st.get("too_many_redirects") == 1  # redirect loop stopped at max_redirects
    assert st.get("302") == 5
    assert faults.hits["/huge.bin"] == 1
    # the waits were honoured: Retry-After: 1 and an HTTP date about 2 s ahead
    t = faults.times["/ratelimited.txt"]
    assert t[1] - t[0] >= 1.0
    t = faults.times["/unavailable.txt"]
    assert t[1] - t[0] >= 1.0
    assert sum(faults.hits[p] for p in faults.hits if p.startswith("/loop/")) == 5
    # failures are re-queued for a later run, not dropped
    seen = crawl_ws.seen("hostile")
    assert seen[f"{b}/always500.txt"]["status"] == "retry"
    for line in r.output.splitlines():
        assert "Traceback" not in line


def test_malformed_json_feed_is_a_clear_source_error(crawl_ws: CrawlWorkspace, faults) -> None:
    crawl_ws.write([{"name": "badjson", "kind": "feed", "url": f"{faults.base}/malformed.json",
                     "items_path": "", "id_path": "key", "raw_url_path": "scrape_url",
                     "allow_private": True}])
    r = crawl_ws.crawl("badjson")
    assert r.proc.returncode == 1
    assert r.run["outcome"] == "error"
    assert r.run["error"].startswith(f"{faults.base}/malformed.json: malformed JSON")
    assert "Traceback" not in r.output


def test_malformed_html_listing_is_survived(crawl_ws: CrawlWorkspace, faults) -> None:
    crawl_ws.write([{"name": "badhtml", "kind": "directory", "allow_private": True,
                     "url": f"{faults.base}/malformed/", "obey_robots": False}])
    r = crawl_ws.crawl("badhtml")
    assert r.run is not None, r.output
    # the one link it could read (x.txt) is a 404: recorded, not fatal
    assert r.run["outcome"] == "ok", r.output
    assert r.run["discovered"] == 1 and r.run["errors"] == 1
    assert "Traceback" not in r.output


def test_crawl_timeout_stops_a_stuck_crawl(crawl_ws: CrawlWorkspace, faults) -> None:
    crawl_ws.write([{"name": "stuck", "kind": "watch", "allow_private": True, "retry_max": 0,
                     "urls": [f"{faults.base}/stall.txt"], "download_timeout": 60,
                     "timeout": 3}])
    r = crawl_ws.crawl("stuck", timeout=60)
    assert r.proc.returncode == 1, r.output
    assert r.run["outcome"] == "timeout"
    assert "timeout" in r.run["error"]
    assert crawl_ws.runs("stuck")[-1]["outcome"] == "timeout"


def test_sigterm_records_a_killed_run_even_with_a_download_stuck(crawl_ws: CrawlWorkspace,
                                                                  faults) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    crawl_ws.write([{"name": "stuck", "kind": "watch", "allow_private": True, "retry_max": 0,
                     "urls": [f"{faults.base}/stall.txt", f"{faults.base}/ok.txt"],
                     "download_timeout": 120, "timeout": 300}])
    env = dict(os.environ, LEAKSENTRY_HOME=str(crawl_ws.root / "state"))
    proc = subprocess.Popen([sys.executable, "-m", "leaksentry", "crawl", "stuck", "--config",
                             str(crawl_ws.config), *crawl_ws.hooks()], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (faults.hits["/stall.txt"] and crawl_ws.docs()):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 1  # well before the stalled download's 120 s
    finally:
        if proc.poll() is None:
            proc.kill()
    run = crawl_ws.runs("stuck")[-1]
    assert run["outcome"] == "killed" and "signal" in run["error"]
    assert run["fetched"] == 1 and run["discovered"] == 2  # counters so far are kept
