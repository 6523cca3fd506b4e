"""Scrapy's RedirectMiddleware without the Referer machinery.

The crawler disables RefererMiddleware on purpose (a leak site learns nothing
about where a link was found), and Scrapy's RedirectMiddleware then warns on
every crawl that it found no RefererMiddleware. This subclass does what
Scrapy's message asks for: its ``handle_referer`` drops the header on every
redirect, and it does not look for a RefererMiddleware at engine start.
"""

from __future__ import annotations

from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.redirect import RedirectMiddleware
from scrapy.http import Request, Response


class NoRefererRedirectMiddleware(RedirectMiddleware):
    @classmethod
    def from_crawler(cls, crawler: Crawler) -> NoRefererRedirectMiddleware:
        mw = cls(crawler.settings)
        mw.crawler = crawler
        return mw

    def handle_referer(self, request: Request, response: Response) -> None:
        request.headers.pop("Referer", None)
