"""Network guard: never fetch private, loopback, link-local or cloud-metadata
addresses (SSRF through a hostile listing, redirect or rendered page).

One policy (:class:`GuardPolicy`) for every path a crawl has to the network:

* :class:`NetworkGuardMiddleware` checks every request that reaches the
  downloader — the first one and each redirect hop, since Scrapy's
  RedirectMiddleware sends the new request through the chain again — by
  resolving its host (IP literals are checked as they are).
* :class:`GuardedResolver` (``DNS_RESOLVER``) refuses the same addresses at
  connect time, so a name that resolves to a public address for the check and
  to 127.0.0.1 a moment later (DNS rebinding) still cannot be reached.
* Chromium (``render = true``) reaches the network only through
  :class:`crawler.guard_proxy.GuardProxy`, which checks with :func:`checked_addresses`
  and connects to the address it checked.

``allow_private = true`` lets private ranges through (loopback, RFC 1918, unique-local,
shared 100.64/10) — never cloud-metadata, link-local or other non-public addresses — and
with ``private_hosts`` only for those hosts (``host`` or ``host:port``). IPv6 forms that
embed an IPv4 address (mapped, 6to4, Teredo, NAT64, IPv4-compatible) are judged as the
IPv4 address they carry.

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

from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Request
from scrapy.resolver import CachingThreadedResolver
from twisted.internet import defer

# the address policy lives apart from Scrapy (`config check` applies it too); its names
# are re-exported here for the guard's importers
from crawler.addresses import (  # noqa: F401
    DEFAULT_POLICY,
    METADATA_ADDRESSES,
    METADATA_NAMES,
    PRIVATE_RANGES,
    GuardPolicy,
    address_class,
    blocked_reason,
)


class BlockedAddress(IgnoreRequest):
    """A request to an address the guard refuses (one line, names URL and address)."""


Resolve = Callable[[str, int], Awaitable[Iterable[str]]]


async def system_resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


async def checked_addresses(host: str, port: int, *, policy: GuardPolicy = DEFAULT_POLICY,
                            resolve: Resolve = system_resolve, label: str | None = None,
                            proxied: bool = False) -> list[str]:
    """The addresses ``host`` resolves to, every one of them allowed by ``policy``.

    Raises :class:`BlockedAddress` when any is refused (``label`` names the request in
    the message). A name that does not resolve raises OSError, unless ``proxied`` (the
    proxy resolves it: ``[]`` is returned)."""
    label = label or f"{host}:{port}"
    host = host.strip("[]").rstrip(".").lower()
    if host in METADATA_NAMES:
        raise BlockedAddress(f"{label}: refused: {host} is a cloud metadata name")
    if _is_ip(host):
        reason = policy.reason(host, host, port)
        if reason:
            raise BlockedAddress(f"{label}: refused: {host} is a {reason}")
        return [host]
    try:
        addresses = sorted(set(await resolve(host, port)))
    except (OSError, UnicodeError):
        if proxied:
            return []
        raise
    if not addresses:
        raise OSError(f"{host}: no address")
    for address in addresses:
        reason = policy.reason(address, host, port)
        if reason:
            raise BlockedAddress(f"{label}: refused: {host} resolves to {address}, a {reason}")
    return addresses


async def check_url(url: str, *, resolve: Resolve = system_resolve,
                    policy: GuardPolicy = DEFAULT_POLICY) -> None:
    """Raise :class:`BlockedAddress` when ``url``'s host is, or resolves to, a refused address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise BlockedAddress(f"{url[:200]}: refused: only http and https are fetched")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = 80
    # unresolvable: the download fails with a DNS error (or the proxy resolves it)
    await checked_addresses(host, port, policy=policy, resolve=resolve, label=url,
                            proxied=True)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def pinned_resolver(pins: dict[str, list[str]], fallback: Resolve = system_resolve) -> Resolve:
    """A resolver answering pinned names (``[crawler] resolve``) from the table."""

    async def resolve(host: str, port: int) -> list[str]:
        if host.lower() in pins:
            return list(pins[host.lower()])
        return list(await fallback(host, port))

    return resolve


class NetworkGuardMiddleware:
    """Downloader middleware checking every request (and redirect hop) against the
    source's :class:`GuardPolicy`."""

    def __init__(self, resolve: Resolve = system_resolve,
                 policy: GuardPolicy = DEFAULT_POLICY) -> None:
        self.resolve = resolve
        self.policy = policy

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> NetworkGuardMiddleware:
        return cls(pinned_resolver(crawler.settings.getdict("LEAKSENTRY_RESOLVE")),
                   GuardPolicy.from_settings(crawler.settings))

    async def process_request(self, request: Request) -> None:
        await check_url(request.url, resolve=self.resolve, policy=self.policy)


class GuardedResolver(CachingThreadedResolver):
    """Scrapy's caching resolver that refuses non-public results at connect time.

    Names in ``LEAKSENTRY_GUARD_TRUSTED_HOSTS`` (the configured proxy) pass. Only the
    name is known here, so ``private_hosts`` entries match on the host, any port (the
    middleware checked the port)."""

    def __init__(self, reactor: Any, cache_size: int, timeout: float,
                 policy: GuardPolicy = DEFAULT_POLICY, trusted: Iterable[str] = (),
                 pins: dict[str, list[str]] | None = None) -> None:
        super().__init__(reactor, cache_size, timeout)
        self.policy = policy
        self.trusted = {t.lower() for t in trusted}
        self.pins = {k.lower(): v for k, v in (pins or {}).items()}

    @classmethod
    def from_crawler(cls, crawler: Crawler, reactor: Any) -> GuardedResolver:
        s = crawler.settings
        cache = s.getint("DNSCACHE_SIZE") if s.getbool("DNSCACHE_ENABLED") else 0
        return cls(reactor, cache, s.getfloat("DNS_TIMEOUT"),
                   policy=GuardPolicy.from_settings(s),
                   trusted=s.getlist("LEAKSENTRY_GUARD_TRUSTED_HOSTS"),
                   pins=s.getdict("LEAKSENTRY_RESOLVE"))

    def getHostByName(self, name: str, timeout: Any = ()) -> defer.Deferred[str]:
        pinned = [a for a in self.pins.get(name.lower(), []) if ":" not in a]
        d = defer.succeed(pinned[0]) if pinned else super().getHostByName(name, timeout)
        if name.lower() in self.trusted:
            return d

        def check(address: str) -> str:
            reason = self.policy.reason(address, name, None)
            if reason:
                raise BlockedAddress(f"{name}: refused at connect: resolves to {address},"
                                     f" a {reason}")
            return address

        return d.addCallback(check)
