"""Rendering through Chromium with scrapy-playwright: settings, request meta, guards.

Only sources with ``render = true`` get the Playwright download handler (the
runner installs it; it starts a Playwright driver even when no request uses
it), and within such a crawl only requests whose meta has ``playwright =
True`` go through the browser (REFERENCE.md, "Crawling stack notes").

Pages are never handed to callbacks (``playwright_include_page`` stays
false): scrapy-playwright then closes every page itself, after a success and
after a failure alike, so no callback or errback can leak one.

Chromium fetches sub-resources, redirect hops, WebSockets, workers and downloads
on its own, past Scrapy's downloader middlewares. It is therefore launched only
behind the crawl's :class:`crawler.guard_proxy.GuardProxy` (started with the
browser by :class:`SharedBrowserProvider`), which applies the source's network
guard to every connection; a response the proxy refused is discarded
(:func:`blocked_response`). :func:`make_abort_request` drops what a listing never
needs (images, fonts, media, stylesheets) and every non-http(s) scheme.
:class:`RenderedResponseMiddleware` turns the proxy's refusals into "blocked" failures and
refuses rendered documents over ``max_download_size``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Any, ClassVar

from scrapy.exceptions import IgnoreRequest
from scrapy_playwright.page import PageMethod

from crawler.guard_proxy import REFUSED_HEADER, GuardProxy, chromium_args
from crawler.middlewares.guard import BlockedAddress, GuardPolicy, pinned_resolver
from leaksentry.config.sources import ListingSource, SourceConfig

if TYPE_CHECKING:
    from playwright.async_api import Request as PlaywrightRequest
    from scrapy.http import Response


#: resource types a listing never needs (Playwright's ``Request.resource_type`` names)
BLOCKED_RESOURCE_TYPES = frozenset({"image", "font", "media", "stylesheet"})

_SCHEMES_OK = ("http://", "https://", "data:", "blob:", "about:")
#: bytes the proxy relays from one upstream connection beyond max_download_size
#: (headers, a listing's scripts on a kept-alive connection)
PROXY_HEADROOM = 4 * 1024 * 1024


def make_abort_request(*, block_resources: bool = True) -> Callable[[Any], Awaitable[bool]]:
    """The ``PLAYWRIGHT_ABORT_REQUEST`` predicate for one source: heavy resources and
    non-http(s) schemes. Addresses are the guard proxy's business (it also sees the
    redirect hops, which Playwright's routing does not)."""

    async def abort_request(request: PlaywrightRequest) -> bool:
        if block_resources and request.resource_type in BLOCKED_RESOURCE_TYPES:
            return True
        return not request.url.startswith(_SCHEMES_OK)  # file:, chrome:, ftp: ... never

    return abort_request


def make_header_filter(token_header: str) -> Callable[..., Awaitable[dict[str, str]]]:
    """The ``PLAYWRIGHT_PROCESS_REQUEST_HEADERS`` function: scrapy-playwright's default,
    minus every credential header. Chromium would send them on every navigation of the
    page (iframes of any origin) and Playwright keeps overridden headers across redirects,
    so a credential given to the browser could not be kept to its origin: rendered
    requests carry none."""
    from scrapy_playwright.headers import use_scrapy_headers

    from leaksentry.config.secrets import credential_header

    token = token_header.lower()

    async def headers(**kwargs: Any) -> dict[str, str]:
        got = await use_scrapy_headers(**kwargs)
        return {k: v for k, v in got.items()
                if k.lower() != token and not credential_header(k)}

    return headers


def configure_crawler(settings: Any, source: SourceConfig) -> None:
    """Add this source's browser-side guards to a crawler's (unfrozen) settings.

    The runner (:func:`crawler.runner.scrapy_settings`) installs the Playwright
    download handler and launch options for ``render = true`` sources; a spider
    calls this from ``from_crawler``: the request filter, the guard proxy
    (the source's :class:`GuardPolicy`, pinned names, its own proxy upstream) and the
    size limit.
    """
    if not isinstance(source, ListingSource) or not source.render:  # only a listing renders
        return
    settings.set("PLAYWRIGHT_ABORT_REQUEST",
                 make_abort_request(block_resources=source.block_resources),
                 priority="cmdline")
    settings.set("PLAYWRIGHT_PROCESS_REQUEST_HEADERS", make_header_filter(source.token_header),
                 priority="cmdline")
    maxsize = settings.getint("DOWNLOAD_MAXSIZE")
    guard = GuardProxy(policy=GuardPolicy.from_settings(settings),
                       resolve=pinned_resolver(settings.getdict("LEAKSENTRY_RESOLVE")),
                       upstream=source.proxy,
                       max_bytes=maxsize + PROXY_HEADROOM if maxsize else 0)
    settings.set("PLAYWRIGHT_BROWSER_PROVIDER",
                 functools.partial(SharedBrowserProvider, guard=guard), priority="cmdline")
    # pages in flight (<= concurrency), free in the pool (<= concurrency) and waiting for
    # their callback to hand them back: a new page must never wait for a pooled one
    settings.set("PLAYWRIGHT_MAX_PAGES_PER_CONTEXT", 3 * int(source.concurrency or 4),
                 priority="cmdline")
    mws = dict(settings.getdict("DOWNLOADER_MIDDLEWARES"))
    mws["crawler.playwright.PagePoolMiddleware"] = 950  # just before the download handler
    mws["crawler.playwright.RenderedResponseMiddleware"] = 960  # first to see the response
    settings.set("DOWNLOADER_MIDDLEWARES", mws, priority="cmdline")


class RenderedTooLarge(IgnoreRequest):
    """A rendered document or browser download over the source's maxsize (too_large)."""


class RenderedResponseMiddleware:
    """Downloader middleware: what Chromium hands back passes the same checks as a
    Scrapy download.

    * A response the guard proxy refused (a redirect hop inside the browser to a refused
      address) becomes :class:`BlockedAddress` — status "blocked", never a document.
    * ``max_download_size``: Chromium decompresses and builds the document itself, so
      the limit is applied to what it hands back (the serialized page, or a download's
      bytes); the guard proxy already capped what one connection may bring in.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize

    @classmethod
    def from_crawler(cls, crawler: Any) -> RenderedResponseMiddleware:
        return cls(crawler.settings.getint("DOWNLOAD_MAXSIZE"))

    def process_response(self, request: Any, response: Response) -> Response:
        if "playwright" not in (response.flags or []):
            return response
        refused = blocked_response(response)
        if refused:
            raise BlockedAddress(refused)
        if self.maxsize and len(response.body) > self.maxsize:
            raise RenderedTooLarge(
                f"{response.url}: rendered document of {len(response.body)} bytes is larger"
                f" than maxsize ({self.maxsize} bytes)")
        return response


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


#: a rendered document larger than the limit fails in the browser, before
#: ``page.content()`` copies it here (characters <= UTF-8 bytes: never a false refusal);
#: the message is classified as too_large
SIZE_CHECK_JS = """(max) => {
  const n = document.documentElement ? document.documentElement.outerHTML.length : 0;
  if (n > max) throw new Error(`rendered document larger than maxsize (${n} > ${max})`);
  return n;
}"""


def render_meta(source: ListingSource, wait_selector: str | None = None, *,
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
    if source.max_download_size:  # refused before the page is serialized into this process
        methods.append(PageMethod("evaluate", SIZE_CHECK_JS, int(source.max_download_size)))
    return {
        "playwright": True,
        # without reuse the handler closes every page itself
        "playwright_include_page": reuse_page,
        "ls_reuse_page": reuse_page,
        "playwright_page_goto_kwargs": {"wait_until": "domcontentloaded"},
        "playwright_page_methods": methods,
    }


def blocked_response(response: Response) -> str | None:
    """Why a rendered response must be discarded: the guard proxy refused its address
    (a redirect inside Chromium to a refused address ends in the proxy's 403)."""
    if "playwright" not in (response.flags or []) or response.status != 403:
        return None
    reason = response.headers.get(REFUSED_HEADER)
    if not reason:
        return None
    return reason.decode("latin-1")


class SharedBrowserProvider:
    """One Playwright driver, one Chromium and one guard proxy per crawl process.

    Scrapy builds one download handler per URL scheme (``http`` and ``https``),
    and each scrapy-playwright handler would start its own Playwright driver and
    browser. This provider (``PLAYWRIGHT_BROWSER_PROVIDER``) lets them share:
    the first ``start`` starts the guard proxy and the driver, the last ``close``
    stops them, and ``launch_browser`` hands every handler the same connected browser.
    Chromium is launched only with the proxy flags (:func:`chromium_args`); without a
    guard (``configure_crawler`` was not called) it is not launched at all.
    """

    _lock: ClassVar[asyncio.Lock | None] = None
    _inner: ClassVar[Any] = None
    _browser: ClassVar[Any] = None
    _guard: ClassVar[GuardProxy | None] = None
    _refs: ClassVar[int] = 0

    def __init__(self, config: Any, guard: GuardProxy | None = None) -> None:
        self.config = config
        self.guard = guard

    @classmethod
    def _get_lock(cls) -> asyncio.Lock:
        if cls._lock is None:
            cls._lock = asyncio.Lock()
        return cls._lock

    async def start(self) -> None:
        from scrapy_playwright.provider import PlaywrightBrowserProvider

        if self.guard is None:
            raise RuntimeError("Chromium is launched only behind the guard proxy")
        if self.config.cdp_url or self.config.connect_url:
            raise RuntimeError("a remote browser cannot be put behind the guard proxy")
        cls = type(self)
        async with cls._get_lock():
            if cls._refs == 0:
                cls._guard = await self.guard.start()
                options = {k: v for k, v in self.config.launch_options.items()
                           if k != "proxy"}
                options["args"] = [a for a in options.get("args", [])
                                   if not a.startswith(("--proxy", "--host-resolver-rules"))]
                options["args"] += chromium_args(cls._guard.port)
                self.config.launch_options = options
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
        raise RuntimeError("persistent contexts are not launched behind the guard proxy")

    async def close(self) -> None:
        cls = type(self)
        async with cls._get_lock():
            cls._refs -= 1
            if cls._refs > 0:
                return
            inner, cls._inner, cls._browser = cls._inner, None, None
            guard, cls._guard = cls._guard, None
        if inner is not None:
            with suppress(Exception):
                await inner.close()
        if guard is not None:
            await guard.close()
