"""The network guard: private, loopback, link-local and metadata addresses are
refused after resolution and on every redirect, unless allow_private is set."""

from __future__ import annotations

import asyncio

import pytest
from conftest import CrawlWorkspace
from scrapy.http import Request

from crawler.middlewares.guard import (
    BlockedAddress,
    NetworkGuardMiddleware,
    blocked_reason,
    check_url,
    pinned_resolver,
)


@pytest.mark.parametrize("address, reason", [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("::ffff:127.0.0.1", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.9", "private"), ("192.168.1.1", "private"),
    ("169.254.169.254", "cloud metadata"), ("fd00:ec2::254", "cloud metadata"),
    ("169.254.1.1", "link-local"), ("fe80::1", "link-local"), ("100.64.0.1", "non-public"),
    ("0.0.0.0", "address"), ("224.0.0.1", "non-public"),
])
def test_refused_addresses(address: str, reason: str) -> None:
    got = blocked_reason(address)
    assert got is not None and reason in got


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert blocked_reason(address) is None


def fixed(*addresses: str):
    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)
    return resolve


async def nxdomain(host: str, port: int) -> list[str]:
    raise OSError("Name or service not known")


def test_name_resolving_to_internal_address_is_refused() -> None:
    with pytest.raises(BlockedAddress, match=r"paste\.example\.com resolves to 127\.0\.0\.1"):
        asyncio.run(check_url("https://paste.example.com/raw/x", resolve=fixed("127.0.0.1")))
    with pytest.raises(BlockedAddress, match="cloud metadata"):
        asyncio.run(check_url("http://a.example/", resolve=fixed("93.184.216.34",
                                                                  "169.254.169.254")))
    asyncio.run(check_url("https://paste.example.com/x", resolve=fixed("93.184.216.34")))
    asyncio.run(check_url("http://abcdefgh.onion/x", resolve=nxdomain))  # the proxy resolves


def test_literals_and_metadata_names_and_real_resolution() -> None:
    for url in ["http://169.254.169.254/latest/meta-data/", "http://[::1]:8080/",
                "http://metadata.google.internal/computeMetadata/v1/",
                "http://localhost:9200/", "http://2130706433/"]:  # decimal 127.0.0.1
        with pytest.raises(BlockedAddress):
            asyncio.run(check_url(url))


def test_only_http_schemes() -> None:
    for url in ["file:///etc/passwd", "ftp://files.example/x", "gopher://x.example/"]:
        with pytest.raises(BlockedAddress, match="only http and https"):
            asyncio.run(check_url(url, resolve=nxdomain))


def test_non_http_handlers_are_not_configured() -> None:
    import crawler.settings as s

    assert set(s.DOWNLOAD_HANDLERS_BASE) == {"http", "https"}


def test_every_redirect_hop_is_checked_by_the_middleware() -> None:
    mw = NetworkGuardMiddleware(pinned_resolver({"paste.example.com": ["93.184.216.34"]},
                                                nxdomain))
    asyncio.run(mw.process_request(Request("https://paste.example.com/a")))
    hop = Request("http://169.254.169.254/latest/meta-data/",
                  meta={"redirect_times": 1, "redirect_urls": ["https://paste.example.com/a"]})
    with pytest.raises(BlockedAddress, match=r"169\.254\.169\.254"):
        asyncio.run(mw.process_request(hop))


def test_redirects_into_the_internal_network_are_refused_in_a_crawl(
        crawl_ws: CrawlWorkspace, faults) -> None:
    """A public-looking source (pinned to a public address, reached through an HTTP
    proxy that is really the loopback fault server) redirects to 127.0.0.1 and to
    169.254.169.254: both hops are refused, the good document is fetched."""
    pub = "http://paste.example.test"
    crawl_ws.write(
        [{"name": "pub", "kind": "watch", "proxy": faults.base, "retry_max": 0,
          "urls": [f"{pub}/ok.txt", f"{pub}/to-loopback.txt", f"{pub}/to-metadata",
                   f"http://localhost:{faults.base.rsplit(':', 1)[1]}/ok.txt"]}],
        crawler={"resolve": {"paste.example.test": ["93.184.216.34"]}})
    r = crawl_ws.crawl("pub")
    assert r.run["outcome"] == "ok", r.output
    assert [d["url"] for d in crawl_ws.docs()] == [f"{pub}/ok.txt"]
    assert r.run["statuses"].get("blocked") == 3, r.run
    assert r.run["statuses"].get("302") == 2  # the redirects arrived, their targets did not
    assert faults.hits["/ok.txt"] == 1  # only through the proxy, never via the redirect
    assert "refused" in r.output and "169.254.169.254" in r.output
    seen = crawl_ws.seen("pub")
    assert seen[f"{pub}/to-metadata"]["status"] == "failed"  # not retried forever


def test_allow_private_lets_loopback_through(crawl_ws: CrawlWorkspace, faults) -> None:
    crawl_ws.write([{"name": "lo", "kind": "watch", "urls": [f"{faults.base}/to-loopback.txt"],
                     "allow_private": True}])
    r = crawl_ws.crawl("lo")
    assert r.run["outcome"] == "ok" and r.run["new"] == 1, r.output
