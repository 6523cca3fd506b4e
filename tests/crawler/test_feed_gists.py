"""The `feed` spider with the github-gists preset against a local simulator of
GitHub's public gists API (docs.github.com: "List public gists", "Using
pagination in the REST API", "Rate limits for the REST API", conditional requests)."""

from __future__ import annotations

import pytest
from conftest import CrawlWorkspace


@pytest.fixture
def gists():
    from servers import gists_api

    srv, state = gists_api.start()
    yield state
    srv.stop()


def gist_source(state, **kw):
    return {"name": "gists", "preset": "github-gists",
            "url": f"{state.api}/gists/public?per_page=2", "max_pages": 5,
            "allow_private": True, "delay": 0, **kw}


def test_pages_files_token_and_etag(crawl_ws: CrawlWorkspace, gists) -> None:
    gists.add("g1", {"a.txt": "one\n", "b.csv": "x,y\n1,2\n"})
    for i in range(2, 6):
        gists.add(f"g{i}", {f"f{i}.txt": f"file {i}\n"})
    crawl_ws.write([gist_source(gists)])
    env = {"GITHUB_TOKEN": gists.token}
    r = crawl_ws.crawl("gists", env=env)
    assert r.proc.returncode == 0, r.output
    assert r.run["outcome"] == "ok"
    ids = sorted(d["item_id"] for d in crawl_ws.docs())
    assert ids == ["g1/a.txt", "g1/b.csv", "g2/f2.txt", "g3/f3.txt", "g4/f4.txt", "g5/f5.txt"]
    assert {d["filename"] for d in crawl_ws.docs()} >= {"a.txt", "b.csv"}
    assert gists.hits["list"] == 3  # 5 gists, 2 per page, followed via Link rel="next"
    api = [q for q in gists.requests if q["path"].startswith("/gists/")]
    raw = [q for q in gists.requests if q["path"].startswith("/raw/")]
    assert api and all(q["auth"] == f"Bearer {gists.token}" for q in api)
    assert raw and all(q["auth"] is None for q in raw)  # the token stays with the API host

    # nothing changed: page 1 answers 304 to If-None-Match, nothing else is requested
    before = len(gists.requests)
    r2 = crawl_ws.crawl("gists", env=env)
    assert r2.run["outcome"] == "ok", r2.output
    assert [q["status"] for q in gists.requests[before:]] == [304]
    assert r2.run["fetched"] == 0 and r2.run["discovered"] == 2
    assert r2.run["statuses"] == {"304": 1}


def test_edited_gist_is_processed_again(crawl_ws: CrawlWorkspace, gists) -> None:
    g1 = gists.add("g1", {"a.txt": "one\n", "b.txt": "two\n"})
    gists.add("g2", {"c.txt": "three\n"})
    crawl_ws.write([gist_source(gists)])
    crawl_ws.crawl("gists")
    assert len(crawl_ws.docs()) == 3
    g1.edit("a.txt", "one, edited\n")
    r = crawl_ws.crawl("gists")
    assert r.run["outcome"] == "ok", r.output
    docs = crawl_ws.docs()
    assert [d["item_id"] for d in docs[3:]] == ["g1/a.txt"]  # only the changed file
    assert docs[3]["sha256"] != docs[0]["sha256"] or docs[0]["item_id"] != "g1/a.txt"
    assert r.run["fetched"] == 2 and r.run["new"] == 1  # b.txt refetched, same hash
    assert gists.hits["raw:g2/c.txt"] == 1


def test_rate_limit_reset_and_secondary_retry_after_are_honoured(crawl_ws: CrawlWorkspace,
                                                                  gists) -> None:
    for i in range(1, 5):
        gists.add(f"g{i}", {f"f{i}.txt": f"file {i}\n"})
    gists.limit_anon = 1  # page 2 finds the hourly limit spent ...
    gists.window = 3  # ... until a few seconds after the first request
    gists.secondary_retry_after = 1  # and the very first request is told to wait 1s
    crawl_ws.write([gist_source(gists, retry_max=3, backoff_cap=30)])
    r = crawl_ws.crawl("gists")
    assert r.run["outcome"] == "ok", r.output
    assert len(crawl_ws.docs()) == 4
    lst = [q for q in gists.requests if q["path"].startswith("/gists/")]
    statuses = [q["status"] for q in lst]
    assert statuses[0] == 429 and 403 in statuses and statuses.count(200) == 2
    assert lst[1]["time"] - lst[0]["time"] >= 1.0  # waited the Retry-After
    i403 = statuses.index(403)
    assert lst[i403 + 1]["status"] == 200
    assert lst[i403 + 1]["time"] >= lst[0]["time"] + 3 - 1  # not before the window reset


def test_rate_limit_beyond_cap_is_a_source_error(crawl_ws: CrawlWorkspace, gists) -> None:
    gists.add("g1", {"a.txt": "one\n"})
    gists.used = gists.limit_anon  # spent for the next hour
    crawl_ws.write([gist_source(gists, backoff_cap=60)])
    r = crawl_ws.crawl("gists")
    assert r.proc.returncode == 1
    assert r.run["outcome"] == "error"
    assert "rate limit exhausted until" in r.run["error"]
    assert gists.hits["list"] == 1  # no hammering while limited
