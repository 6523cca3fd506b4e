"""The `directory` spider against real directory listings: Python's http.server
and nginx's autoindex (the Debian package), both on loopback."""

from __future__ import annotations

import os
import time
from pathlib import Path

from conftest import CrawlWorkspace


def make_tree(root: Path) -> None:
    (root / "a.txt").write_text("top level\n")
    (root / "skip.log").write_text("excluded by glob\n")
    (root / "sub").mkdir()
    (root / "sub" / "b.csv").write_text("x,y\n1,2\n")
    (root / "sub" / "name with space.txt").write_text("space\n")
    (root / "sub" / "deeper").mkdir()
    (root / "sub" / "deeper" / "c.txt").write_text("depth two\n")
    (root / "sub" / "deeper" / "deepest").mkdir()
    (root / "sub" / "deeper" / "deepest" / "d.txt").write_text("depth three: too deep\n")


def dir_source(url: str, **kw):
    return {"name": "dir", "kind": "directory", "url": url, "allow_private": True,
            "max_depth": 2, "exclude": ["*.log"], "delay": 0, "obey_robots": False, **kw}


EXPECTED = ["/a.txt", "/sub/b.csv", "/sub/deeper/c.txt", "/sub/name with space.txt"]


def test_python_http_server_listing_and_robots(crawl_ws: CrawlWorkspace,
                                               http_server_dir) -> None:
    root, url = http_server_dir
    make_tree(root)
    (root / "sub" / "deeper" / "private.txt").write_text("robots say no\n")
    (root / "robots.txt").write_text("User-agent: *\nDisallow: /sub/deeper/private.txt\n")
    src = dir_source(url, exclude=["*.log", "robots.txt"])
    del src["obey_robots"]  # default for HTML kinds: obeyed
    crawl_ws.write([src])
    r = crawl_ws.crawl("dir")
    assert r.proc.returncode == 0, r.output
    assert sorted(d["item_id"] for d in crawl_ws.docs()) == EXPECTED
    assert r.run["discovered"] == 5 and r.run["new"] == 4 and r.run["errors"] == 0
    assert r.run["statuses"].get("robots") == 1  # private.txt, per robots.txt
    assert {d["filename"] for d in crawl_ws.docs()} >= {"name with space.txt", "b.csv"}

    r2 = crawl_ws.crawl("dir")
    assert r2.run["outcome"] == "ok" and r2.run["fetched"] == 0, r2.output
    assert len(crawl_ws.docs()) == 4


def test_nginx_autoindex_depth_caps_edits_and_listed_size(crawl_ws: CrawlWorkspace,
                                                          nginx_dir) -> None:
    root, url = nginx_dir
    make_tree(root)
    with open(root / "huge.bin", "wb") as fh:  # sparse: listed as 2 GiB, never fetched
        fh.truncate(2 * 1024**3)
    crawl_ws.write([dir_source(url, max_download_size="10MB")])
    r = crawl_ws.crawl("dir")
    assert r.proc.returncode == 0, r.output
    assert sorted(d["item_id"] for d in crawl_ws.docs()) == EXPECTED
    assert r.run["statuses"].get("too_large") == 1
    assert r.run["fetched"] == 4

    r2 = crawl_ws.crawl("dir")
    assert r2.run["outcome"] == "ok" and r2.run["fetched"] == 0, r2.output

    # an edit changes nginx's listed date and size: only that file is processed again
    edited = root / "sub" / "b.csv"
    edited.write_text("x,y\n1,2\n3,4\n")
    later = time.time() + 120
    os.utime(edited, (later, later))
    r3 = crawl_ws.crawl("dir")
    assert r3.run["outcome"] == "ok", r3.output
    assert [d["item_id"] for d in crawl_ws.docs()[4:]] == ["/sub/b.csv"]
    assert (r3.run["fetched"], r3.run["new"]) == (1, 1)


def test_max_items_leaves_the_rest_for_the_next_run(crawl_ws: CrawlWorkspace,
                                                    http_server_dir) -> None:
    root, url = http_server_dir
    for i in range(6):
        (root / f"f{i}.txt").write_text(f"file {i}\n")
    crawl_ws.write([dir_source(url, max_items=4)])
    r = crawl_ws.crawl("dir")
    assert r.run["outcome"] == "ok" and r.run["new"] == 4, r.output
    assert sum(1 for row in crawl_ws.seen("dir").values() if row["status"] == "pending") == 2
    r2 = crawl_ws.crawl("dir")
    assert r2.run["new"] == 2, r2.output
    assert len({d["item_id"] for d in crawl_ws.docs()}) == 6


def test_listed_sizes() -> None:
    from crawler.spiders.directory import listed_size

    assert listed_size("28-Nov-2026 16:00    2147483648") == 2147483648  # nginx
    assert listed_size("2026-11-28 16:00 1.5K") == 1536  # Apache
    assert listed_size("2026-11-28 16:00 12M") == 12 * 1024**2
    assert listed_size("2026-11-28 16:00 -") is None  # a directory
