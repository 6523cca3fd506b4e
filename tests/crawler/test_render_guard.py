"""Chromium inside the network guard (issue 20, item 1).

A rendered crawl of a hostile page (servers/hostile_browser.py) served on one loopback
port, which the source allows (``allow_private`` scoped by ``private_hosts`` to that
host:port), while every way the page has to reach another loopback port — the
"internal" service — is tried: navigation, iframe, fetch and download through redirects,
a fetch by name, WebSockets from the page and a worker, a service worker, prefetch
links and WebRTC. The internal service must receive nothing (no TCP connection, no UDP
datagram) and the source's own content must still be crawled. Real Chromium, real
``leaksentry crawl``, loopback only.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path

import pytest
from servers.hostile_browser import HostileSite, InternalService

from crawler.guard_proxy import REFUSED_HEADER, GuardProxy
from crawler.middlewares.guard import GuardPolicy

chromium = pytest.mark.skipif(not Path("/usr/bin/chromium").exists(),
                              reason="Debian chromium not installed (make test installs it)")


@pytest.fixture
def hostile():
    internal = InternalService().start()
    site = HostileSite(internal).start()
    yield site, internal
    site.stop()
    internal.stop()


@chromium
def test_hostile_page_reaches_nothing_behind_the_guard(hostile, crawl_ws) -> None:
    site, internal = hostile
    crawl_ws.write([{
        "name": "hostile", "kind": "listing", "url": f"{site.url}/list",
        "link_css": "a.paste", "id_regex": r"/item/(\w+)$", "render": True,
        "wait_selector": "a.paste", "wait_timeout": "30s", "obey_robots": False,
        "retry_max": 0, "allow_private": True, "private_hosts": [f"127.0.0.1:{site.port}"],
        "block_resources": False}])
    res = crawl_ws.crawl("hostile", timeout=240)
    assert res.run is not None, res.output[-3000:]
    # the internal service got nothing at all: no TCP connection, no UDP datagram
    assert internal.received == 0, (dict(internal.connections), internal.datagrams)
    # the source's own content is crawled; the redirected items are not documents
    docs = crawl_ws.docs()
    assert [d["item_id"] for d in docs] == ["good"], res.output[-3000:]
    assert res.run["discovered"] == 3
    assert res.run["statuses"].get("blocked") == 2, (res.run, res.output[-6000:])  # nav, dl
    assert "INTERNAL-SECRET" not in crawl_ws.stored_text()
    # the page did try: the browser fetched every hostile path from the site
    for path in ("/r/iframe", "/r/fetch", "/worker.js", "/sw.js", "/download-frame",
                 "/item/nav", "/item/dl"):
        assert site.hits[path] >= 1, (path, dict(site.hits))
    port = internal.port
    # the refusals were the proxy's (the WebSocket, the name, the redirect targets)
    assert f"127.0.0.1:{port}: refused" in res.output
    assert f"localhost:{port}: refused" in res.output


# -- the proxy on its own (no browser) ---------------------------------------------------

def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


class _Loop:
    """The proxy runs in an asyncio loop in a thread; the test talks to it by sockets."""

    def __init__(self, proxy: GuardProxy) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.proxy = asyncio.run_coroutine_threadsafe(proxy.start(), self.loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def internal():
    svc = InternalService().start()
    yield svc
    svc.stop()


def test_proxy_refuses_and_never_connects(internal) -> None:
    run = _Loop(GuardProxy(policy=GuardPolicy(allow_private=True,
                                              private_hosts=("127.0.0.1:1",))))
    try:
        port = internal.port
        got = _raw(run.proxy.port, f"GET http://127.0.0.1:{port}/x HTTP/1.1\r\n"
                   f"Host: 127.0.0.1:{port}\r\n\r\n".encode())
        assert got.startswith(b"HTTP/1.1 403") and REFUSED_HEADER.encode() in got
        got = _raw(run.proxy.port, f"CONNECT localhost:{port} HTTP/1.1\r\n\r\n".encode())
        assert got.startswith(b"HTTP/1.1 403")
        for target in ("169.254.169.254:80", "[fd00:ec2::254]:443", "[2002:7f00:1::]:80",
                       "metadata.google.internal:80", "[::ffff:127.0.0.1]:80"):
            got = _raw(run.proxy.port, f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
            assert got.startswith(b"HTTP/1.1 403"), target
        got = _raw(run.proxy.port, b"GET ftp://127.0.0.1/x HTTP/1.1\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 403")
        assert internal.received == 0
    finally:
        run.close()


def test_proxy_forwards_to_an_allowed_host_and_caps_bytes(internal) -> None:
    run = _Loop(GuardProxy(policy=GuardPolicy(allow_private=True,
                                              private_hosts=(f"127.0.0.1:{internal.port}",))))
    try:
        got = _raw(run.proxy.port, f"GET http://127.0.0.1:{internal.port}/ok HTTP/1.1\r\n"
                   f"Host: 127.0.0.1\r\nProxy-Connection: keep-alive\r\n\r\n".encode())
        assert got.startswith(b"HTTP/1.1 200") and b"INTERNAL-SECRET" in got
        assert internal.connections["GET /ok HTTP/1.1"] == 1  # origin form, checked address
    finally:
        run.close()
    capped = _Loop(GuardProxy(policy=GuardPolicy(allow_private=True), max_bytes=20))
    try:
        got = _raw(capped.proxy.port, f"GET http://127.0.0.1:{internal.port}/big HTTP/1.1\r\n"
                   f"Host: 127.0.0.1\r\n\r\n".encode())
        assert len(got) <= 20 and b"INTERNAL-SECRET" not in got
    finally:
        capped.close()



@chromium
def test_rendered_document_over_max_download_size_is_too_large(loopback, crawl_ws) -> None:
    """The render path keeps max_download_size, decompressed: an item page that is
    small on the wire (gzip) but renders to 1.5 MiB is refused as too_large under a
    1 MiB limit (the issue's 64 MiB against 50 MiB, scaled down for a shared test
    machine), the small item is crawled."""
    import gzip

    from servers.loopback import QuietHandler

    big_html = b"<html><body><pre>" + b"row of exported text\n" * 75_000 + b"</pre></body></html>"
    wire = gzip.compress(big_html)
    assert len(big_html) > 1.5 * 2**20 > 2**20 > 20 * len(wire)

    class Site(QuietHandler):
        def do_GET(self) -> None:
            if self.path == "/list":
                self.send_body(200, b'<a class="paste" href="/item/big">b</a>'
                                    b'<a class="paste" href="/item/small">s</a>',
                               "text/html")
            elif self.path == "/item/big":
                self.send_body(200, wire, "text/html", {"Content-Encoding": "gzip"})
            else:
                self.send_body(200, b"<html><body>small item</body></html>", "text/html")

    site = loopback(Site)
    crawl_ws.write([{
        "name": "big", "kind": "listing", "url": f"{site.url}/list", "link_css": "a.paste",
        "id_regex": r"/item/(\w+)$", "render": True, "wait_selector": "a.paste",
        "obey_robots": False, "retry_max": 0, "allow_private": True,
        "private_hosts": [f"127.0.0.1:{site.port}"], "max_download_size": "1MiB"}])
    res = crawl_ws.crawl("big", timeout=240)
    assert res.run is not None, res.output[-3000:]
    assert [d["item_id"] for d in crawl_ws.docs()] == ["small"], res.output[-3000:]
    assert res.run["statuses"].get("too_large") == 1, res.run


def test_proxy_chains_to_the_source_proxy_and_still_checks_literals(internal) -> None:
    """With a source ``proxy`` the guard proxy forwards to it (names the local resolver
    cannot resolve are the upstream's to resolve, as in the Scrapy guard); IP literals
    and locally resolvable names are still checked."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str] = []

    class Upstream(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            body = b"via upstream"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    up = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=up.serve_forever, daemon=True).start()

    async def nxdomain(host: str, port: int) -> list[str]:
        raise OSError("not found")

    run = _Loop(GuardProxy(resolve=nxdomain, upstream=f"http://127.0.0.1:{up.server_port}"))
    try:
        got = _raw(run.proxy.port, b"GET http://abcdefgh.onion/x HTTP/1.1\r\n"
                   b"Host: abcdefgh.onion\r\n\r\n")
        assert got.startswith(b"HTTP/1.0 200") and got.endswith(b"via upstream"), got
        assert seen == ["http://abcdefgh.onion/x"]  # absolute form, for the upstream
        got = _raw(run.proxy.port, f"GET http://127.0.0.1:{internal.port}/ HTTP/1.1\r\n"
                   "Host: x\r\n\r\n".encode())
        assert got.startswith(b"HTTP/1.1 403") and len(seen) == 1
        assert internal.received == 0
    finally:
        run.close()
        up.shutdown()
        up.server_close()
