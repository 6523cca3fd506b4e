"""Network guard: never fetch private, loopback, link-local or cloud-metadata
addresses (SSRF through a hostile listing or redirect) unless the source says
``allow_private = true``.

Two layers, both active for every crawl:

* :class:`NetworkGuardMiddleware` checks every request that reaches the
  downloader — the first one and each redirect hop, since Scrapy's
  RedirectMiddleware sends the new request through the chain again — by
  resolving its host (IP literals are checked as they are).
* :class:`GuardedResolver` (``DNS_RESOLVER``) refuses the same addresses at
  connect time, so a name that resolves to a public address for the check and
  to 127.0.0.1 a moment later (DNS rebinding) still cannot be reached.

With a proxy (``proxy = "socks5h://..."`` or ``http://``) the target is resolved
by the proxy; names that do not resolve locally (.onion) are let through, names
that do are checked, and IP literals always are. The proxy's own host is the
operator's choice and is not checked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import Request
from scrapy.resolver import CachingThreadedResolver
from twisted.internet import defer

# the address policy lives apart from Scrapy (`config check` applies it too)
from crawler.addresses import METADATA_NAMES, blocked_reason


class BlockedAddress(IgnoreRequest):
    """A request to an address the guard refuses (one line, names URL and address)."""


Resolve = Callable[[str, int], Awaitable[Iterable[str]]]


async def _resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({info[4][0] for info in infos})


async def check_url(url: str, *, resolve: Resolve = _resolve) -> None:
    """Raise :class:`BlockedAddress` when ``url``'s host is, or resolves to, a refused address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise BlockedAddress(f"{url[:200]}: refused: only http and https are fetched")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        return
    if host in METADATA_NAMES:
        raise BlockedAddress(f"{url}: refused: {host} is a cloud metadata name")
    reason = blocked_reason(host)
    if reason:
        raise BlockedAddress(f"{url}: refused: {host} is a {reason}")
    if _is_ip(host):
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = 80
    try:
        addresses = list(await resolve(host, port))
    except (OSError, UnicodeError):
        return  # unresolvable: the download fails with a DNS error (or the proxy resolves it)
    for address in addresses:
        reason = blocked_reason(address)
        if reason:
            raise BlockedAddress(f"{url}: refused: {host} resolves to {address}, a {reason}")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def pinned_resolver(pins: dict[str, list[str]], fallback: Resolve = _resolve) -> Resolve:
    """A resolver answering pinned names (``[crawler] resolve``) from the table."""

    async def resolve(host: str, port: int) -> list[str]:
        if host.lower() in pins:
            return list(pins[host.lower()])
        return list(await fallback(host, port))

    return resolve


class NetworkGuardMiddleware:
    """Downloader middleware; ``LEAKSENTRY_ALLOW_PRIVATE = True`` turns it off."""

    def __init__(self, resolve: Resolve = _resolve) -> None:
        self.resolve = resolve

    @classmethod
    def from_crawler(cls, crawler: Any) -> NetworkGuardMiddleware:
        if crawler.settings.getbool("LEAKSENTRY_ALLOW_PRIVATE"):
            # a choice the source states, not a problem: no message (Scrapy would log
            # one at WARNING level on every crawl)
            raise NotConfigured
        return cls(pinned_resolver(crawler.settings.getdict("LEAKSENTRY_RESOLVE")))

    async def process_request(self, request: Request) -> None:
        await check_url(request.url, resolve=self.resolve)


class GuardedResolver(CachingThreadedResolver):
    """Scrapy's caching resolver that refuses non-public results at connect time.

    Names in ``LEAKSENTRY_GUARD_TRUSTED_HOSTS`` (the configured proxy) pass."""

    def __init__(self, reactor: Any, cache_size: int, timeout: float,
                 enabled: bool = True, trusted: Iterable[str] = (),
                 pins: dict[str, list[str]] | None = None) -> None:
        super().__init__(reactor, cache_size, timeout)
        self.enabled = enabled
        self.trusted = {t.lower() for t in trusted}
        self.pins = {k.lower(): v for k, v in (pins or {}).items()}

    @classmethod
    def from_crawler(cls, crawler: Any, reactor: Any) -> GuardedResolver:
        s = crawler.settings
        cache = s.getint("DNSCACHE_SIZE") if s.getbool("DNSCACHE_ENABLED") else 0
        return cls(reactor, cache, s.getfloat("DNS_TIMEOUT"),
                   enabled=not s.getbool("LEAKSENTRY_ALLOW_PRIVATE"),
                   trusted=s.getlist("LEAKSENTRY_GUARD_TRUSTED_HOSTS"),
                   pins=s.getdict("LEAKSENTRY_RESOLVE"))

    def getHostByName(self, name: str, timeout: Any = ()) -> defer.Deferred[str]:
        pinned = [a for a in self.pins.get(name.lower(), []) if ":" not in a]
        d = defer.succeed(pinned[0]) if pinned else super().getHostByName(name, timeout)
        if not self.enabled or name.lower() in self.trusted:
            return d

        def check(address: str) -> str:
            reason = blocked_reason(address)
            if reason:
                raise BlockedAddress(f"{name}: refused at connect: resolves to {address},"
                                     f" a {reason}")
            return address

        return d.addCallback(check)
