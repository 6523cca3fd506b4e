"""The network guard: private, loopback, link-local and metadata addresses are
refused after resolution and on every redirect, unless allow_private is set."""

from __future__ import annotations

import asyncio

import pytest
from conftest import CrawlWorkspace
from scrapy.http import Request

from crawler.middlewares.guard import (
    BlockedAddress,
    GuardPolicy,
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


@pytest.mark.parametrize("address, reason", [
    ("2002:7f00:1::", "loopback"), ("2002:a9fe:a9fe::1", "cloud metadata"),
    ("2002:0a00:0001::", "private"), ("2002:a9fe:0101::", "link-local"),
    # Teredo: the client IPv4 is stored inverted (here 127.0.0.1 and 169.254.169.254)
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"),
    ("2001:0:4136:e378:8000:63bf:5601:5601", "cloud metadata"),
    ("64:ff9b::a9fe:a9fe", "cloud metadata"), ("64:ff9b::7f00:1", "loopback"),
    ("::127.0.0.1", "loopback"), ("::ffff:169.254.169.254", "cloud metadata"),
])
def test_ipv6_forms_embedding_ipv4_are_judged_as_that_ipv4(address: str, reason: str) -> None:
    got = blocked_reason(address)
    assert got is not None and reason in got, got
    # allow_private opens them only where it opens the embedded IPv4
    opened = GuardPolicy(allow_private=True).reason(address) is None
    assert opened == (reason in ("loopback", "private"))


def test_6to4_of_a_public_address_passes() -> None:
    assert blocked_reason("2002:5db8:d822::1") is None  # 93.184.216.34


@pytest.mark.parametrize("address", ["169.254.169.254", "fd00:ec2::254", "169.254.1.1",
                                     "fe80::1", "0.0.0.0", "224.0.0.1", "100.100.100.200",
                                     "2002:a9fe:a9fe::"])
def test_allow_private_never_opens_metadata_or_link_local(address: str) -> None:
    assert GuardPolicy(allow_private=True).reason(address, "h", 80) is not None


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "10.1.2.3", "192.168.1.1",
                                     "172.16.0.9", "fd12:3456::1", "100.64.0.1"])
def test_allow_private_opens_private_ranges(address: str) -> None:
    assert GuardPolicy(allow_private=True).reason(address, "h", 80) is None
    assert GuardPolicy().reason(address, "h", 80) is not None


def test_private_hosts_scope_allow_private_to_the_named_hosts() -> None:
    policy = GuardPolicy(allow_private=True,
                         private_hosts=("127.0.0.1:8080", "intranet.example", "[::1]:9"))
    assert policy.reason("127.0.0.1", "127.0.0.1", 8080) is None
    assert "outside private_hosts" in (policy.reason("127.0.0.1", "127.0.0.1", 8081) or "")
    assert policy.reason("10.0.0.5", "intranet.example", 443) is None
    assert policy.reason("10.0.0.5", "other.example", 443) is not None
    assert policy.reason("::1", "::1", 9) is None and policy.reason("::1", "::1", 8) is not None
    assert policy.reason("127.0.0.1", None, None) is not None  # unknown host: refused
    # the resolver knows only the name: any port of a named host
    assert policy.reason("127.0.0.1", "127.0.0.1", None) is None


def test_middleware_applies_the_scoped_policy() -> None:
    mw = NetworkGuardMiddleware(pinned_resolver({"in.example": ["10.0.0.7"]}, nxdomain),
                                GuardPolicy(allow_private=True, private_hosts=("in.example",)))
    asyncio.run(mw.process_request(Request("http://in.example/a")))
    with pytest.raises(BlockedAddress, match="outside private_hosts"):
        asyncio.run(mw.process_request(Request("http://127.0.0.1:9/")))
    with pytest.raises(BlockedAddress, match="cloud metadata"):
        asyncio.run(mw.process_request(Request("http://169.254.169.254/")))


def test_allow_private_source_cannot_reach_metadata_or_unnamed_hosts_in_a_crawl(
        crawl_ws: CrawlWorkspace, faults, loopback) -> None:
    """A real crawl: allow_private with private_hosts naming the fault server; another
    loopback server (not named) and the metadata address are refused."""
    from servers.loopback import QuietHandler

    class Other(QuietHandler):
        def do_GET(self) -> None:
            self.server.hits += 1  # type: ignore[attr-defined]
            self.send_body(200, b"other")

    other = loopback(Other, hits=0)
    port = faults.base.rsplit(":", 1)[1]
    crawl_ws.write([{"name": "lo", "kind": "watch", "retry_max": 0, "allow_private": True,
                     "private_hosts": [f"127.0.0.1:{port}"],
                     "urls": [f"{faults.base}/ok.txt", f"{other.url}/x.txt",
                              "http://169.254.169.254/latest/meta-data/"]}])
    r = crawl_ws.crawl("lo")
    assert r.run["outcome"] == "ok", r.output
    assert [d["url"] for d in crawl_ws.docs()] == [f"{faults.base}/ok.txt"]
    assert r.run["statuses"].get("blocked") == 2, r.run
    assert other.httpd.hits == 0


def test_dns_rebinding_is_refused_at_connect_time(crawl_ws: CrawlWorkspace, loopback) -> None:
    """DNS rebinding in a real crawl: the middleware's lookup of ``localhost`` answers a
    public address (the pin is IPv6, which the connect-time resolver does not use), the
    connect-time lookup answers 127.0.0.1 (the system's answer). The resolver refuses
    it; the "internal" loopback server receives nothing."""
    from servers.loopback import QuietHandler

    class Internal(QuietHandler):
        def do_GET(self) -> None:
            self.server.hits += 1  # type: ignore[attr-defined]
            self.send_body(200, b"internal")

    internal = loopback(Internal, hits=0)
    port = internal.url.rsplit(":", 1)[1]
    crawl_ws.write([{"name": "rebind", "kind": "watch", "retry_max": 0,
                     "urls": [f"http://localhost:{port}/secret.txt"]}],
                   crawler={"resolve": {"localhost": ["2606:4700:4700::1111"]}})
    r = crawl_ws.crawl("rebind")
    assert r.run is not None, r.output
    assert crawl_ws.docs() == []
    assert "refused at connect" in r.output and "127.0.0.1" in r.output, r.output[-2000:]
    assert internal.httpd.hits == 0
