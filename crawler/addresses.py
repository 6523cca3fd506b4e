"""Which addresses a crawl may reach: the network guard's policy
(:mod:`crawler.middlewares.guard` applies it to every path a crawl has to the network),
kept free of Scrapy and Twisted so that `leaksentry config check` can apply it without
loading the crawling stack."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

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
