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
