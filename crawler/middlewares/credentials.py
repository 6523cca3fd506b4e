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
from typing import Any
from urllib.parse import urlsplit

from scrapy.http import Request

log = logging.getLogger(__name__)

#: meta keys set by SourceSpider.request
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
    def from_crawler(cls, crawler: Any) -> CredentialOriginMiddleware:
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
