"""Retry-After parsing (RFC 9110 §10.2.3: delay-seconds or HTTP-date) and
GitHub's X-RateLimit-Reset, as the backoff middleware reads them."""

from __future__ import annotations

import asyncio
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
