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
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from scrapy.exceptions import IgnoreRequest
from scrapy.http import Request
from scrapy.resolver import CachingThreadedResolver
from twisted.internet import defer

#: metadata endpoints worth naming in messages (all are non-global anyway)
METADATA_ADDRESSES = frozenset({"169.254.169.254", "fd00:ec2::254", "169.254.170.2",
                                "100.100.100.200", "192.0.0.192"})
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata", "instance-data",
                            "instance-data.ec2.internal"})
#: what ``allow_private`` opens (loopback is checked separately)
PRIVATE_RANGES = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"))
_SHARED = PRIVATE_RANGES[3]  # 100.64/10: carrier-grade NAT, Tailscale
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class BlockedAddress(IgnoreRequest):
    """A request to an address the guard refuses (one line, names URL and address)."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, 6to4, Teredo client, NAT64,
    IPv4-compatible), or None."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    low = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if any(ip in net for net in _NAT64):
        return low
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:
        return low
    return None


def address_class(address: str) -> tuple[str, bool] | None:
    """``(reason, opened by allow_private)`` for a refused IP literal, None for a public one."""
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(
            address.strip("[]").split("%")[0])
    except ValueError:
        return None
    via = ""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            via = "" if ip.ipv4_mapped is not None else f" (embeds {inner})"
            ip = inner
    if str(ip) in METADATA_ADDRESSES:
        return "cloud metadata address" + via, False
    if ip.is_loopback:
        return "loopback address" + via, True
    if ip.is_link_local:
        return "link-local address" + via, False
    for net in PRIVATE_RANGES:
        if net.version == ip.version and ip in net:
            return ("non-public address" if net == _SHARED else "private address") + via, True
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved or not ip.is_global:
        return "non-public address" + via, False
    return None


def blocked_reason(address: str) -> str | None:
    """Why ``address`` (an IP literal) must not be fetched by default, or None when it may."""
    got = address_class(address)
    return got[0] if got else None


def _host_port(entry: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]:port`` -> (lower-case host, port or None)."""
    entry = entry.strip().lower().rstrip(".")
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, int(port) if port.isdigit() else None
    return entry, None


@dataclass(frozen=True, slots=True)
class GuardPolicy:
    """What one source may reach. The default refuses every non-public address."""

    allow_private: bool = False
    #: with allow_private: only these hosts (``host`` or ``host:port``) may be private
    private_hosts: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Any) -> GuardPolicy:
        return cls(allow_private=settings.getbool("LEAKSENTRY_ALLOW_PRIVATE"),
                   private_hosts=tuple(settings.getlist("LEAKSENTRY_PRIVATE_HOSTS")))

    def covers(self, host: str | None, port: int | None) -> bool:
        """Whether ``allow_private`` applies to ``host`` (and ``port``, when known)."""
        if not self.allow_private:
            return False
        if not self.private_hosts:
            return True
        if host is None:
            return False
        host = host.strip("[]").lower().rstrip(".")
        for entry in self.private_hosts:
            h, p = _host_port(entry)
            if h == host and (p is None or port is None or p == port):
                return True
        return False

    def reason(self, address: str, host: str | None = None,
               port: int | None = None) -> str | None:
        """Why this source must not reach ``address`` (resolved from ``host``), or None."""
        got = address_class(address)
        if got is None:
            return None
        why, opened = got
        if opened and self.covers(host, port):
            return None
        if opened and self.allow_private:
            return f"{why} outside private_hosts (allow_private covers only those)"
        if not opened and "metadata" not in why:
            return f"{why} (refused even with allow_private)"
        return why


DEFAULT_POLICY = GuardPolicy()

Resolve = Callable[[str, int], Awaitable[Iterable[str]]]


async def system_resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({info[4][0] for info in infos})


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
    def from_crawler(cls, crawler: Any) -> NetworkGuardMiddleware:
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
    def from_crawler(cls, crawler: Any, reactor: Any) -> GuardedResolver:
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
