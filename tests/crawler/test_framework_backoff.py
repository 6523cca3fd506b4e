"""Retry-After parsing (RFC 9110 §10.2.3: delay-seconds or HTTP-date) and
GitHub's X-RateLimit-Reset, as the backoff middleware reads them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email.utils import formatdate

from scrapy.http import Request, Response

from crawler.middlewares.backoff import BackoffRetryMiddleware, parse_retry_after, rate_limit_wait


def test_retry_after_forms() -> None:
    assert parse_retry_after("120") == 120
    assert parse_retry_after(b"0") == 0
    now = 1_800_000_000.0
    assert abs(parse_retry_after(formatdate(now + 30, usegmt=True), now=now) - 30) < 1.01
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_rate_limit_headers() -> None:
    now = 1_800_000_000.0
    r = Response("https://api.example/x", status=403,
                 headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(now + 42))})
    assert rate_limit_wait(r, now=now) == 42
    ok = Response("https://api.example/x", status=200, headers={"X-RateLimit-Remaining": "0"})
    assert rate_limit_wait(ok, now=now) is None
    r429 = Response("https://api.example/x", status=429, headers={"Retry-After": "7"})
    assert rate_limit_wait(r429, now=now) == 7


def test_backoff_doubles_is_capped_and_gives_up() -> None:
    mw = BackoffRetryMiddleware(max_retries=3, base=0.01, cap=0.05)
    req = Request("https://x.example/a")
    r1 = asyncio.run(mw.process_response(req, Response(req.url, status=500)))
    assert isinstance(r1, Request) and r1.meta["retry_times"] == 1
    assert r1.meta["ls_retry_delay"] == 0.01
    r2 = asyncio.run(mw.process_response(r1, Response(req.url, status=502)))
    assert r2.meta["ls_retry_delay"] == 0.02
    # a server asking for longer than the cap: passed on, the item is re-queued for later
    resp = Response(req.url, status=429, headers={"Retry-After": "3600"})
    assert asyncio.run(mw.process_response(req, resp)) is resp
    r3 = asyncio.run(mw.process_response(r2, Response(req.url, status=500)))
    r4 = asyncio.run(mw.process_response(r3, Response(req.url, status=500)))
    assert isinstance(r4, Response)  # retry_times exhausted
    assert asyncio.run(mw.process_response(req, Response(req.url, status=404))).status == 404


def test_absurd_header_values_are_clamped_never_raised() -> None:
    """Issue 20: X-RateLimit-Reset: 99999999999999 used to end a crawl with
    ``ValueError: year 3170843 is out of range``."""
    from crawler.middlewares.backoff import MAX_WAIT, describe_wait, epoch_wait

    now = 1_700_000_000.0
    for value in (b"99999999999999", b"9" * 400, b"1e999", b"inf"):
        assert epoch_wait(value, now) == MAX_WAIT
    for value in (b"nan", b"\xff\xfe", "²".encode(), b"", b"-"):
        assert epoch_wait(value, now) is None
    assert epoch_wait(b"-99999999999999", now) == 0.0
    for value in (b"99999999999999999999", b"9" * 60):
        assert parse_retry_after(value, now) == MAX_WAIT
    for value in ("²".encode(), b"Fri, 31 Dec 99999 23:59:59 GMT", b"\xff" * 10, b"-5"):
        assert parse_retry_after(value, now) is None
    assert describe_wait(MAX_WAIT, b"x").startswith(str(datetime.now(UTC).year + 1)[:3])
    assert describe_wait(None, b"\xff" * 500).startswith("'")
    r403 = Response("https://api.example/x", status=403,
                    headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "99999999999999"})
    assert rate_limit_wait(r403, now) == MAX_WAIT


def test_absurd_values_in_a_crawl_are_that_items_error(crawl_ws, loopback) -> None:
    """Through the real CLI: 403 with an absurd X-RateLimit-Reset, 429 with an absurd
    Retry-After, a non-ASCII Retry-After, a listing with an absurd size — each item gets
    its status, the good item is fetched, no traceback, the run is recorded."""
    from servers.loopback import QuietHandler

    class Site(QuietHandler):
        def do_GET(self) -> None:
            if self.path == "/reset":
                self.send_body(403, b"no", headers={"X-RateLimit-Remaining": "0",
                                                     "X-RateLimit-Reset": "99999999999999"})
            elif self.path == "/after":
                self.send_body(429, b"slow", headers={"Retry-After": "9" * 80})
            elif self.path == "/after-odd":  # sent as the bytes b"\xb2\xff"
                self.send_body(429, b"slow", headers={"Retry-After": "\xb2\xff"})
            else:
                self.send_body(200, b"fine")

    site = loopback(Site)
    crawl_ws.write([{"name": "odd", "kind": "watch", "allow_private": True, "retry_max": 1,
                     "urls": [f"{site.url}/reset", f"{site.url}/after",
                              f"{site.url}/after-odd", f"{site.url}/ok"]}])
    r = crawl_ws.crawl("odd")
    assert r.run is not None, r.output[-3000:]
    assert "Traceback" not in r.output and "out of range" not in r.output, r.output[-3000:]
    assert [d["url"] for d in crawl_ws.docs()] == [f"{site.url}/ok"]
    assert r.run["statuses"].get("403") == 1 and r.run["statuses"].get("429") >= 2, r.run
    errors = [row["note"] for row in crawl_ws.seen("odd").values() if row["note"]]
    assert any("rate limit exhausted until" in e for e in errors), errors
