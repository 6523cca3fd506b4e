"""The generic `feed` kind: nested item lists, dotted paths, raw-url templates,
page-number and next-link pagination, listed sizes over the cap, items without ids."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import CrawlWorkspace
from servers.loopback import QuietHandler

from crawler.spiders.feed import get_path, with_query


def test_paths() -> None:
    doc = {"data": {"items": [{"id": 1, "files": {"a": {"raw": "u1"}, "b": {"raw": "u2"}}}]}}
    assert get_path(doc, "data.items.0.id") == [1]
    assert get_path(doc, "data.items.*.files.*.raw") == ["u1", "u2"]
    assert get_path(doc, "data.nope") == [] and get_path(doc, "") == [doc]
    assert with_query("http://x.example/a?p=1&q=z", p=2) == "http://x.example/a?p=2&q=z"


class Api(QuietHandler):
    """``/api?cursor=N`` -> {"result": {"entries": [...]}, "next": "/api?cursor=N+1"};
    ``/list?page=N`` -> {"rows": [...]} (empty past the last page); ``/body/ID`` -> text."""

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        q = parse_qs(parts.query)
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        if parts.path == "/api":
            n = int(q.get("cursor", ["0"])[0])
            entries = [{"meta": {"uid": f"c{n}-{i}"}, "bytes": 10} for i in range(2)]
            if n == 0:
                entries.append({"meta": {}, "bytes": 5})  # no id: recorded, skipped
                entries.append({"meta": {"uid": "big"}, "bytes": 10**9})  # over the cap
            body = {"result": {"entries": entries}, "next": f"/api?cursor={n + 1}"}
            return self.send_body(200, json.dumps(body).encode(), "application/json")
        if parts.path == "/list":
            n = int(q.get("page", ["1"])[0])
            rows = [{"id": f"p{n}-{i}"} for i in range(2)] if n <= 2 else []
            return self.send_body(200, json.dumps({"rows": rows}).encode(), "application/json")
        if parts.path.startswith("/body/"):
            return self.send_body(200, f"body of {parts.path[6:]}\n".encode())
        return self.send_body(404, b"")


@pytest.fixture
def api(loopback):
    return loopback(Api, hits=[])


def test_next_path_pagination_templates_and_caps(crawl_ws: CrawlWorkspace, api) -> None:
    base = api.url
    crawl_ws.write([
        {"name": "cursor", "kind": "feed", "url": f"{base}/api", "items_path": "result.entries",
         "id_path": "meta.uid", "size_path": "bytes", "raw_url_template": base + "/body/{id}",
         "pagination": "next_path", "next_path": "next", "max_pages": 3,
         "max_download_size": "1MB", "allow_private": True},
        {"name": "pages", "kind": "feed", "url": f"{base}/list", "items_path": "rows",
         "id_path": "id", "raw_url_template": base + "/body/{id}", "pagination": "page",
         "max_pages": 10, "allow_private": True},
    ])
    r = crawl_ws.crawl("cursor")
    assert r.run["outcome"] == "ok", r.output
    assert sorted(d["item_id"] for d in crawl_ws.docs()) == [
        "c0-0", "c0-1", "c1-0", "c1-1", "c2-0", "c2-1"]  # 3 pages, no "big"
    assert r.run["statuses"].get("too_large") == 1 and r.run["errors"] == 1
    assert "/body/big" not in api.httpd.hits

    r = crawl_ws.crawl("pages")
    assert r.run["outcome"] == "ok", r.output
    got = sorted(d["item_id"] for d in crawl_ws.docs() if d["source"] == "pages")
    assert got == ["p1-0", "p1-1", "p2-0", "p2-1"]
    assert [h for h in api.httpd.hits if h.startswith("/list")] == [
        "/list", "/list?page=2", "/list?page=3"]  # stops at the first empty page
