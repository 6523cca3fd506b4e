"""The crawl's components in process, on a real Scrapy crawler and state store: the seen
filter (spider middleware), the source's headers and the deadline (downloader
middlewares), the run's counters (crawler.stats)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.utils.test import get_crawler

from crawler import runstats
from crawler.middlewares.budget import ItemBudgetMiddleware
from crawler.middlewares.credentials import CredentialOriginMiddleware, SourceHeadersMiddleware
from crawler.middlewares.deadline import DeadlineMiddleware
from crawler.middlewares.seen import LISTED, SeenFilterMiddleware
from leaksentry.store import seen
from leaksentry.store.db import Store


def _crawler(tmp_path: Path, **settings: Any) -> Crawler:
    return get_crawler(settings_dict={
        "EXTENSIONS": {"crawler.state.StateStore": 100}, "LEAKSENTRY_SOURCE": "s",
        "LEAKSENTRY_STATE": str(tmp_path / "state.db"), **settings})


def _listed(item_id: str, version: str | None = None) -> Request:
    url = f"https://src.example/{item_id}"
    return Request(url, meta={LISTED: (item_id, url, version)})


def test_the_seen_filter_then_the_budget_let_through_new_items(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    seen.discovered(store.conn, "s", "done1", "https://src.example/done1")
    seen.processed(store.conn, "s", "done1", "0" * 64, version="v1")
    store.close()
    crawler = _crawler(tmp_path, LEAKSENTRY_MAX_ITEMS=2)
    mw, budget = SeenFilterMiddleware(crawler), ItemBudgetMiddleware(crawler)

    def through(requests: list[Request]) -> list[Request]:
        return list(budget.process_spider_output(None, mw.process_spider_output(None, requests)))

    page = Request("https://src.example/page/2")  # not a listed item: always through
    out = through([_listed("new1"), _listed("done1", "v1"), _listed("new1"), _listed("new2"),
                   _listed("new3"), page])
    assert [r.url.rsplit("/", 1)[-1] for r in out] == ["new1", "new2", "2"]
    assert crawler.stats.get_value(runstats.DISCOVERED) == 5
    mw.flush()  # first sightings, the one past the budget too (fetched by the next run)
    rows = seen.load_source(mw.store.conn, "s")
    assert {k: v.status for k, v in rows.items()} == {
        "done1": "done", "new1": "pending", "new2": "pending", "new3": "pending"}
    assert through([_listed("done1", "v2")]) == []  # edited upstream, but over the budget
    assert budget.left == 0 and not budget.take()


def test_a_shard_counts_and_fetches_only_its_own_items(tmp_path: Path) -> None:
    crawler = _crawler(tmp_path, LEAKSENTRY_MAX_ITEMS=100, LEAKSENTRY_SHARD=[0, 2])
    mw = SeenFilterMiddleware(crawler)
    ids = [f"item{i}" for i in range(20)]
    out = list(mw.process_spider_output(None, [_listed(i) for i in ids]))
    mine = [i for i in ids if mw.shard is not None and mw.shard.owns(i)]
    assert 0 < len(mine) < len(ids)
    assert [r.meta[LISTED][0] for r in out] == mine
    assert crawler.stats.get_value(runstats.DISCOVERED) == len(mine)


def test_source_credentials_go_to_its_own_host_once() -> None:
    mw = SourceHeadersMiddleware({"X-Api-Key": "k1", "Accept": "text/plain"}, "src.example",
                                 "t0", "Authorization", "Bearer {token}", None)
    own = Request("https://src.example/a", meta={"ls_role": "item"})
    mw.process_request(own)
    assert own.headers.get("Authorization") == b"Bearer t0"
    assert own.headers.get("X-Api-Key") == b"k1" and own.headers.get("Accept") == b"text/plain"
    other = Request("https://files.example/b", meta={"ls_role": "item"})
    mw.process_request(other)
    assert "Authorization" not in other.headers and "X-Api-Key" not in other.headers
    assert other.headers.get("Accept") == b"text/plain"
    robots = Request("https://src.example/robots.txt")  # Scrapy's own: none of the source's
    mw.process_request(robots)
    assert "Authorization" not in robots.headers
    # a redirect elsewhere drops them, and a hop back to the source does not get them again
    hop = own.replace(url="https://files.example/c")
    CredentialOriginMiddleware().process_request(hop)
    assert "Authorization" not in hop.headers and "X-Api-Key" not in hop.headers
    back = hop.replace(url="https://src.example/d")
    mw.process_request(back)
    assert "Authorization" not in back.headers


def test_no_download_outlives_the_crawl() -> None:
    mw = DeadlineMiddleware(timeout=10.0, download_timeout=60.0)
    r = Request("https://src.example/a")
    mw.process_request(r)
    assert 1.0 <= r.meta["download_timeout"] <= 12.0
    short = Request("https://src.example/b", meta={"download_timeout": 5.0})
    mw.process_request(short)
    assert short.meta["download_timeout"] == 5.0


def test_the_run_is_read_from_the_stats() -> None:
    now = datetime.now(UTC)
    stats = {runstats.DISCOVERED: 4, runstats.FETCHED: 3, runstats.NEW: 2, runstats.HITS: 1,
             runstats.ERRORS: 1, runstats.ERROR: "x: HTTP 404", "downloader/response_count": 5,
             "downloader/response_status_count/200": 3, "downloader/response_status_count/503": 2,
             runstats.STATUS + "gone": 1, runstats.STATUS + "timeout": 1}
    s = runstats.summary(stats, "s", now, now, "error")
    assert (s.discovered, s.fetched, s.new, s.hits, s.errors) == (4, 3, 2, 1, 1)
    assert s.statuses == {"200": 3, "503": 2, "gone": 1, "timeout": 1}
    assert s.error == "x: HTTP 404"
