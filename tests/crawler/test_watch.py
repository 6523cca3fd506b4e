"""The `watch` spider: explicit URLs polled with conditional requests and content hashes."""

from __future__ import annotations

from conftest import CrawlWorkspace


def test_conditional_requests_and_edits(crawl_ws: CrawlWorkspace, faults) -> None:
    urls = [f"{faults.base}/watch/doc", f"{faults.base}/ok.txt"]
    crawl_ws.write([{"name": "w", "kind": "watch", "urls": urls, "allow_private": True,
                     "headers": {"X-Case": "42"}}],
                   crawler={"user_agent": "leaksentry-test/1.0"})
    r = crawl_ws.crawl("w")
    sent = faults.headers["/ok.txt"]
    assert sent["User-Agent"] == "leaksentry-test/1.0" and sent["X-Case"] == "42"
    assert "Referer" not in sent
    assert r.proc.returncode == 0, r.output
    assert (r.run["discovered"], r.run["fetched"], r.run["new"]) == (2, 2, 2)
    assert sorted(d["url"] for d in crawl_ws.docs()) == sorted(urls)

    r2 = crawl_ws.crawl("w")
    assert r2.run["outcome"] == "ok", r2.output
    assert r2.run["statuses"] == {"200": 1, "304": 1}  # ETag honoured; ok.txt has none
    assert r2.run["new"] == 0 and len(crawl_ws.docs()) == 2  # same hash: not new

    faults.watch_body = b"watched document v2, edited\n"
    r3 = crawl_ws.crawl("w")
    assert r3.run["new"] == 1, r3.output
    assert crawl_ws.docs()[-1]["url"] == urls[0]


def test_all_watched_urls_failing_is_a_source_error(crawl_ws: CrawlWorkspace, faults) -> None:
    crawl_ws.write([{"name": "w", "kind": "watch", "allow_private": True, "retry_max": 0,
                     "urls": [f"{faults.base}/missing", f"{faults.base}/always500.txt"]}])
    r = crawl_ws.crawl("w")
    assert r.proc.returncode == 1
    assert r.run["outcome"] == "error" and "watched URLs" in r.run["error"]
    assert r.run["errors"] == 2 and r.run["statuses"] == {"404": 1, "500": 1}
