"""Rendering through Chromium with scrapy-playwright: settings, request meta, guards.

Only sources with ``render = true`` get the Playwright download handler (the
runner installs it; it starts a Playwright driver even when no request uses
it), and within such a crawl only requests whose meta has ``playwright =
True`` go through the browser (REFERENCE.md, "Crawling stack notes").

Pages are never handed to callbacks (``playwright_include_page`` stays
false): scrapy-playwright then closes every page itself, after a success and
after a failure alike, so no callback or errback can leak one.

Chromium fetches sub-resources on its own, past Scrapy's downloader
middlewares. :func:`make_abort_request` therefore (1) drops images, fonts,
media and stylesheets, which a listing never needs, and (2) re-applies the
network guard to every request the page makes, unless the source allows
private addresses. Redirect hops inside the browser are not routed by
Playwright, so callbacks also check the address the final response came from
(:func:`blocked_response`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from scrapy_playwright.page import PageMethod

from crawler.middlewares.guard import BlockedAddress, blocked_reason, check_url

if TYPE_CHECKING:
    from playwright.async_api import Request as PlaywrightRequest
    from scrapy.http import Response

    from leaksentry.config.sources import SourceConfig

#: resource types a listing never needs (Playwright's ``Request.resource_type`` names)
BLOCKED_RESOURCE_TYPES = frozenset({"image", "font", "media", "stylesheet"})

_SCHEMES_OK = ("http://", "https://", "data:", "blob:", "about:")


def make_abort_request(*, block_resources: bool = True,
                       allow_private: bool = False) -> Callable[[Any], Awaitable[bool]]:
    """The ``PLAYWRIGHT_ABORT_REQUEST`` predicate for one source."""

    refused: dict[str, bool] = {}  # origin -> verdict, for this crawl (one lookup per host)

    async def abort_request(request: PlaywrightRequest) -> bool:
        if block_resources and request.resource_type in BLOCKED_RESOURCE_TYPES:
            return True
        url = request.url
        if not url.startswith(_SCHEMES_OK):
            return True  # file:, chrome:, ws: ... never
        if not allow_private and url.startswith(("http://", "https://")):
            parts = urlsplit(url)
            origin = f"{parts.scheme}://{parts.netloc}"
            if origin not in refused:
                try:
                    await check_url(origin + "/")
                    refused[origin] = False
                except BlockedAddress:
                    refused[origin] = True
            return refused[origin]
        return False

    return abort_request


def configure_crawler(settings: Any, source: SourceConfig) -> None:
    """Add this source's browser-side request filter to a crawler's (unfrozen) settings.

    The runner (:func:`crawler.runner.scrapy_settings`) installs the Playwright
    download handler and launch options for ``render = true`` sources; a spider
    calls this from ``from_crawler`` so the filter knows the source's
    ``block_resources`` and ``allow_private``.
    """
    if not source.render:
        return
    settings.set("PLAYWRIGHT_ABORT_REQUEST",
                 make_abort_request(block_resources=source.block_resources,
                                    allow_private=source.allow_private),
                 priority="cmdline")
    settings.set("PLAYWRIGHT_BROWSER_PROVIDER", "crawler.playwright.SharedBrowserProvider",
                 priority="cmdline")
    # pages in flight (<= concurrency), free in the pool (<= concurrency) and waiting for
    # their callback to hand them back: a new page must never wait for a pooled one
    settings.set("PLAYWRIGHT_MAX_PAGES_PER_CONTEXT", 3 * int(source.concurrency or 4),
                 priority="cmdline")
    mws = dict(settings.getdict("DOWNLOADER_MIDDLEWARES"))
    mws["crawler.playwright.PagePoolMiddleware"] = 950  # just before the download handler
    settings.set("DOWNLOADER_MIDDLEWARES", mws, priority="cmdline")


class PagePool:
    """Free Chromium pages of one crawl, reused by rendered item requests.

    Every page is accounted for: a page is either in flight (its request's meta
    holds it), free here, or closed — by :meth:`release` when the pool is full,
    by the errback (:meth:`discard`) after a failure, or by :meth:`close` when
    the spider closes. ``closed`` counts the pages closed here.
    """

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.free: list[Any] = []
        self.closed = 0
        self._tasks: set[asyncio.Future[Any]] = set()

    def take(self) -> Any | None:
        while self.free:
            page = self.free.pop()
            if not page.is_closed():
                return page
        return None

    def release(self, page: Any | None) -> None:
        """Hand a page back after its callback ran (closed when the pool is full)."""
        if page is None or page.is_closed():
            return
        if len(self.free) < self.limit:
            self.free.append(page)
        else:
            self.discard(page)

    def discard(self, page: Any | None) -> None:
        """Close a page (after a failure, its state is unknown)."""
        if page is None or page.is_closed():
            return
        self.closed += 1
        task = asyncio.ensure_future(_close_quietly(page))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        pages, self.free = self.free, []
        for page in pages:
            if not page.is_closed():
                self.closed += 1
                await _close_quietly(page)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def _close_quietly(page: Any) -> None:
    with suppress(Exception):
        await page.close()


class PagePoolMiddleware:
    """Downloader middleware: a request marked ``ls_reuse_page`` gets a free page from the
    spider's ``page_pool`` when it is about to be downloaded (not when it was created)."""

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Any) -> PagePoolMiddleware:
        return cls(crawler)

    def process_request(self, request: Any) -> None:
        pool = getattr(self.crawler.spider, "page_pool", None)
        if pool is not None and request.meta.get("ls_reuse_page") \
                and request.meta.get("playwright_page") is None:
            page = pool.take()
            if page is not None:
                request.meta["playwright_page"] = page


def render_meta(source: SourceConfig, wait_selector: str | None = None, *,
                reuse_page: bool = False) -> dict[str, Any]:
    """Request meta that renders a page and waits for its content.

    With ``wait_selector`` the page is read once that selector is attached
    (content written by JavaScript); without one, once the network is idle.
    With ``reuse_page`` the request takes a free page from the spider's
    :class:`PagePool` (a new tab costs more than the navigation itself) and the
    callback must hand it back (:meth:`PagePool.release`), the errback close it.
    """
    timeout_ms = float(source.wait_timeout or 15.0) * 1000
    if wait_selector:
        methods = [PageMethod("wait_for_selector", wait_selector, state="attached",
                              timeout=timeout_ms)]
    else:
        methods = [PageMethod("wait_for_load_state", "networkidle", timeout=timeout_ms)]
    return {
        "playwright": True,
        # without reuse the handler closes every page itself
        "playwright_include_page": reuse_page,
        "ls_reuse_page": reuse_page,
        "playwright_page_goto_kwargs": {"wait_until": "domcontentloaded"},
        "playwright_page_methods": methods,
    }


def blocked_response(response: Response, source: SourceConfig) -> str | None:
    """Why a rendered response must be discarded: the browser followed a redirect to
    a refused address (redirects inside Chromium bypass the downloader middlewares)."""
    if source.allow_private or "playwright" not in (response.flags or []):
        return None
    ip = getattr(response, "ip_address", None)
    reason = blocked_reason(str(ip)) if ip is not None else None
    return f"{response.url}: refused: rendered from {ip}, a {reason}" if reason else None


class SharedBrowserProvider:
    """One Playwright driver and one Chromium per crawl process.

    Scrapy builds one download handler per URL scheme (``http`` and ``https``),
    and each scrapy-playwright handler would start its own Playwright driver and
    browser. This provider (``PLAYWRIGHT_BROWSER_PROVIDER``) lets them share:
    the first ``start`` starts the driver, the last ``close`` stops it, and
    ``launch_browser`` hands every handler the same connected browser.
    """

    _lock: ClassVar[asyncio.Lock | None] = None
    _inner: ClassVar[Any] = None
    _browser: ClassVar[Any] = None
    _refs: ClassVar[int] = 0

    def __init__(self, config: Any) -> None:
        self.config = config

    @classmethod
    def _get_lock(cls) -> asyncio.Lock:
        if cls._lock is None:
            cls._lock = asyncio.Lock()
        return cls._lock

    async def start(self) -> None:
        from scrapy_playwright.provider import PlaywrightBrowserProvider

        cls = type(self)
        async with cls._get_lock():
            if cls._refs == 0:
                cls._inner = PlaywrightBrowserProvider(self.config)
                await cls._inner.start()
            cls._refs += 1

    async def launch_browser(self) -> Any:
        cls = type(self)
        async with cls._get_lock():
            if cls._browser is None or not cls._browser.is_connected():
                cls._browser = await cls._inner.launch_browser()
            return cls._browser

    async def launch_persistent_context(self, context_kwargs: dict[str, Any]) -> Any:
        return await type(self)._inner.launch_persistent_context(context_kwargs)

    async def close(self) -> None:
        cls = type(self)
        async with cls._get_lock():
            cls._refs -= 1
            if cls._refs > 0:
                return
            inner, cls._inner, cls._browser = cls._inner, None, None
        if inner is not None:
            with suppress(Exception):
                await inner.close()
