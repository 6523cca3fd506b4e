"""Credentials never follow a redirect to another origin.

A source's token (``token_header``, e.g. ``X-Api-Key`` or ``Authorization``) and every
credential-like header of its ``headers`` table are meant for the origin they were
attached for. Scrapy's RedirectMiddleware drops ``Authorization`` and ``Cookie`` on a
cross-origin redirect, but not custom headers; this middleware drops them all. Every
redirect hop passes through the downloader middlewares again, so each hop is compared
with the origin recorded when the credentials were attached (``ls_credential_origin``).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from scrapy.crawler import Crawler
from scrapy.http import Request

from leaksentry.config.base import resolve_secret
from leaksentry.config.secrets import credential_header

log = logging.getLogger(__name__)

#: meta keys set by SourceHeadersMiddleware
ORIGIN_META = "ls_credential_origin"
HEADERS_META = "ls_credential_headers"


def origin(url: str) -> str:
    """``scheme://host:port`` (default ports filled in)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    port = port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


class CredentialOriginMiddleware:
    """Downloader middleware: strip the request's credential headers off any hop whose
    origin differs from the one they were attached for."""

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CredentialOriginMiddleware:
        return cls()

    def process_request(self, request: Request) -> None:
        attached = request.meta.get(ORIGIN_META)
        if not attached or origin(request.url) == attached:
            return
        dropped = [name for name in request.meta.get(HEADERS_META, ())
                   if request.headers.pop(name, None) is not None]
        request.headers.pop("Authorization", None)
        request.headers.pop("Cookie", None)
        if dropped:
            log.info("%s: credential header(s) %s not sent to another origin",
                     request.url[:200], ", ".join(dropped))


#: request meta: the source's headers were applied (a redirect or retry copy keeps them,
#: and never gets them back once the origin check dropped them)
APPLIED_META = "ls_source_headers"


class SourceHeadersMiddleware:
    """Downloader middleware: the source's ``headers``, its token and its proxy on the
    spider's own requests (those with an ``ls_role``; robots.txt requests get none).

    Credentials (the token, credential-like configured headers) go to the source's own
    host only (``LEAKSENTRY_SOURCE_HOST``), and are recorded for
    :class:`CredentialOriginMiddleware`, which drops them on a hop to another origin.
    Headers the spider set on the request win."""

    def __init__(self, headers: dict[str, str], host: str | None, token: str | None,
                 token_header: str, token_format: str, proxy: str | None) -> None:
        self.headers = headers
        self.host = host
        self.token = token
        self.token_header = token_header
        self.token_format = token_format
        self.proxy = proxy

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SourceHeadersMiddleware:
        s = crawler.settings
        env = s.get("LEAKSENTRY_TOKEN_ENV")
        return cls(dict(s.getdict("LEAKSENTRY_HEADERS")), s.get("LEAKSENTRY_SOURCE_HOST") or None,
                   resolve_secret(None, env) if env else None, s.get("LEAKSENTRY_TOKEN_HEADER"),
                   s.get("LEAKSENTRY_TOKEN_FORMAT"), s.get("LEAKSENTRY_PROXY") or None)

    def process_request(self, request: Request) -> None:
        meta = request.meta
        if "ls_role" not in meta or meta.get(APPLIED_META):
            return
        meta[APPLIED_META] = True
        own = urlsplit(request.url).hostname == self.host
        hdrs = {k: v for k, v in self.headers.items() if own or not credential_header(k)}
        if self.token and own:
            hdrs[self.token_header] = self.token_format.format(token=self.token)
        for name, value in hdrs.items():
            request.headers.setdefault(name, value)
        creds = [h for h in hdrs if h == self.token_header or credential_header(h)]
        if creds:  # for this origin only: dropped on a redirect elsewhere
            meta.setdefault(ORIGIN_META, origin(request.url))
            meta.setdefault(HEADERS_META, creds)
        if self.proxy:
            meta.setdefault("proxy", self.proxy)
