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

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

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

    async def abort_request(request: PlaywrightRequest) -> bool:
        if block_resources and request.resource_type in BLOCKED_RESOURCE_TYPES:
            return True
        url = request.url
        if not url.startswith(_SCHEMES_OK):
            return True  # file:, chrome:, ws: ... never
        if not allow_private and url.startswith(("http://", "https://")):
            try:
                await check_url(url)
            except BlockedAddress:
                return True
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
    settings.set("PLAYWRIGHT_MAX_CONTEXTS", 1, priority="cmdline")


def render_meta(source: SourceConfig, wait_selector: str | None = None) -> dict[str, Any]:
    """Request meta that renders a page and waits for its content.

    With ``wait_selector`` the page is read once that selector is attached
    (content written by JavaScript); without one, once the network is idle.
    """
    timeout_ms = float(source.wait_timeout or 15.0) * 1000
    if wait_selector:
        methods = [PageMethod("wait_for_selector", wait_selector, state="attached",
                              timeout=timeout_ms)]
    else:
        methods = [PageMethod("wait_for_load_state", "networkidle", timeout=timeout_ms)]
    return {
        "playwright": True,
        "playwright_include_page": False,  # the handler closes every page
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
