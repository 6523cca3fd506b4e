"""Which addresses the crawler refuses to fetch: the policy of the network guard
(:mod:`crawler.middlewares.guard`), kept free of Scrapy and Twisted so that `leaksentry
config check` can apply it without loading the crawling stack."""

from __future__ import annotations

import ipaddress

__all__ = ["METADATA_ADDRESSES", "METADATA_NAMES", "blocked_reason"]

#: metadata endpoints worth naming in messages (all are non-global anyway)
METADATA_ADDRESSES = frozenset({"169.254.169.254", "fd00:ec2::254", "169.254.170.2",
                                "100.100.100.200", "192.0.0.192"})
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata", "instance-data",
                            "instance-data.ec2.internal"})


def blocked_reason(address: str) -> str | None:
    """Why ``address`` (an IP literal) must not be fetched, or None when it may."""
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if str(ip) in METADATA_ADDRESSES:
        return "cloud metadata address"
    if ip.is_loopback:
        return "loopback address"
    if ip.is_link_local:
        return "link-local address"
    if ip.is_private:
        return "private address"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved or not ip.is_global:
        return "non-public address"
    return None
