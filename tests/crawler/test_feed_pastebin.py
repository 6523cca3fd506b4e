"""The `feed` spider with the pastebin preset against a local simulator of the
Pastebin scraping API (https://pastebin.com/doc_scraping_api; REFERENCE.md "Sources")."""

from __future__ import annotations

from conftest import CrawlWorkspace


def pb_source(state, **kw):
    return {"name": "pb", "preset": "pastebin", "url": f"{state.base}/api_scraping.php?limit=100",
            "allow_private": True, "delay": 0, "concurrency": 4, **kw}


def test_new_pastes_fetched_once_then_nothing_new(crawl_ws: CrawlWorkspace, pastebin) -> None:
    for i in range(5):
        pastebin.add(f"K{i:07d}", f"paste body {i}\n")
    crawl_ws.write([pb_source(pastebin)])
    r = crawl_ws.crawl("pb")
    assert r.proc.returncode == 0, r.output
    assert r.run["outcome"] == "ok"
    assert (r.run["discovered"], r.run["fetched"], r.run["new"]) == (5, 5, 5)
    docs = crawl_ws.docs()
    assert sorted(d["item_id"] for d in docs) == [f"K{i:07d}" for i in range(5)]
    assert all(d["url"].startswith(pastebin.base + "/K") for d in docs)  # the paste's page
    assert {d["filename"] for d in docs} == {f"K{i:07d}.txt" for i in range(5)}
    assert all(r_["status"] == "done" for r_ in crawl_ws.seen("pb").values())

    r2 = crawl_ws.crawl("pb")
    assert r2.proc.returncode == 0, r2.output
    assert (r2.run["discovered"], r2.run["fetched"], r2.run["new"]) == (5, 0, 0)
    assert pastebin.hits["/api_scrape_item.php"] == 5  # no body fetched twice
    assert len(crawl_ws.docs()) == 5


def test_not_ready_is_requeued_and_fetched_by_the_next_run(crawl_ws: CrawlWorkspace,
                                                           pastebin) -> None:
    pastebin.add("READY001", "ready body\n")
    pastebin.add("LATE0001", "late body\n", not_ready_for=1)
    crawl_ws.write([pb_source(pastebin, not_ready_delay=0)])
    r = crawl_ws.crawl("pb")
    assert r.run["outcome"] == "ok", r.output
    assert r.run["statuses"].get("not_ready") == 1
    row = crawl_ws.seen("pb")["LATE0001"]
    assert row["status"] == "retry" and row["retry_at"] and row["first_seen"]
    assert [d["item_id"] for d in crawl_ws.docs()] == ["READY001"]

    r2 = crawl_ws.crawl("pb")
    assert r2.run["outcome"] == "ok", r2.output
    assert sorted(d["item_id"] for d in crawl_ws.docs()) == ["LATE0001", "READY001"]
    assert crawl_ws.seen("pb")["LATE0001"]["status"] == "done"


def test_not_ready_waits_for_its_retry_time(crawl_ws: CrawlWorkspace, pastebin) -> None:
    pastebin.add("LATE0002", "late body\n", not_ready_for=1)
    crawl_ws.write([pb_source(pastebin, not_ready_delay="1h")])
    crawl_ws.crawl("pb")
    r2 = crawl_ws.crawl("pb")
    assert r2.run["fetched"] == 0  # listed again, but its retry time has not come
    assert pastebin.hits["item:LATE0002"] == 1
    assert crawl_ws.seen("pb")["LATE0002"]["status"] == "retry"


def test_deleted_paste_is_recorded_not_retried(crawl_ws: CrawlWorkspace, pastebin) -> None:
    pastebin.add("GONE0001", "x", deleted=True)
    crawl_ws.write([pb_source(pastebin)])
    r = crawl_ws.crawl("pb")
    assert r.run["outcome"] == "ok" and r.run["statuses"].get("gone") == 1, r.output
    assert crawl_ws.seen("pb")["GONE0001"]["status"] == "gone"
    crawl_ws.crawl("pb")
    assert pastebin.hits["item:GONE0001"] == 1
    assert crawl_ws.docs() == []


def test_ip_not_whitelisted_is_a_clear_source_error(crawl_ws: CrawlWorkspace, pastebin) -> None:
    pastebin.add("K0000001", "body")
    pastebin.denied = True
    crawl_ws.write([pb_source(pastebin)])
    r = crawl_ws.crawl("pb")
    assert r.proc.returncode == 1
    assert r.run["outcome"] == "error"
    assert "not whitelisted" in r.run["error"] and "api_scraping.php" in r.run["error"]
    run = crawl_ws.runs("pb")[-1]
    assert run["outcome"] == "error" and "not whitelisted" in run["error"]
    health = crawl_ws.query("SELECT * FROM source_health WHERE source = 'pb'")[0]
    assert health["consecutive_errors"] == 1


def test_item_fetched_after_access_lost_midway_is_requeued(crawl_ws: CrawlWorkspace,
                                                          pastebin) -> None:
    """Access denied on a body (whitelist changed mid-crawl) re-queues, never drops."""
    pastebin.add("K0000002", "body")
    pastebin.deny_bodies = True
    crawl_ws.write([pb_source(pastebin, backoff_base=0, backoff_cap=0)])
    r = crawl_ws.crawl("pb")
    assert r.run["outcome"] == "error", r.output
    assert "not whitelisted" in r.run["error"]
    row = crawl_ws.seen("pb")["K0000002"]
    assert row["status"] == "retry"
    pastebin.deny_bodies = False
    r2 = crawl_ws.crawl("pb")
    assert r2.run["outcome"] == "ok", r2.output
    assert [d["item_id"] for d in crawl_ws.docs()] == ["K0000002"]


def test_feed_listing_nothing_for_n_runs_marks_the_source_unhealthy(crawl_ws: CrawlWorkspace,
                                                                     pastebin) -> None:
    crawl_ws.write([pb_source(pastebin, unhealthy_after=2)])
    for _ in range(2):
        r = crawl_ws.crawl("pb")
        assert r.run["outcome"] == "ok" and r.run["discovered"] == 0, r.output
    health = crawl_ws.query("SELECT * FROM source_health WHERE source = 'pb'")[0]
    assert health["healthy"] == 0 and "discovered nothing" in health["reason"]
