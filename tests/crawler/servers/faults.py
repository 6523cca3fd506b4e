"""A hostile web server for fault tests: one path per misbehaviour.

Real HTTP on loopback (``http.server``); each behaviour is what a crawler meets
on the open web: rate limits with Retry-After, 500s, a body that stalls
half-way, redirect loops, redirects into the internal network, a 2 GB
Content-Length, a gzip bomb, malformed JSON and HTML. ``/watch/doc`` serves a
document with ETag/Last-Modified validators for the `watch` spider.
"""

from __future__ import annotations

import gzip
import io
import threading
import time
from collections import Counter
from email.utils import formatdate
from urllib.parse import urlsplit

from servers.loopback import LoopbackServer, QuietHandler


def gzip_bomb(size: int = 200 * 1024 * 1024) -> bytes:
    """``size`` zero bytes, gzip-compressed (about 200 KB for 200 MB)."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9) as gz:
        chunk = b"\0" * (1024 * 1024)
        for _ in range(size // len(chunk)):
            gz.write(chunk)
    return buf.getvalue()


class FaultState:
    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.times: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        self.watch_body = b"watched document v1\n"
        self.watch_mtime = time.time() - 3600
        self.flaky_failures = 2  # /flaky answers 500 this many times, then 200
        self.retry_after = "1"
        self.bomb = b""
        self.base = ""
        self.headers: dict[str, dict[str, str]] = {}  # last request headers per path


class Handler(QuietHandler):
    def do_GET(self) -> None:
        st: FaultState = self.server.state  # type: ignore[attr-defined]
        path = urlsplit(self.path).path
        with st.lock:
            st.hits[path] += 1
            st.times.setdefault(path, []).append(time.time())
            st.headers[path] = dict(self.headers.items())
            n = st.hits[path]
        if path == "/ok.txt":
            return self.send_body(200, b"plain document\n")
        if path == "/ratelimited.txt":  # 429 + Retry-After once, then the document
            if n == 1:
                return self.send_body(429, b"slow down", headers={"Retry-After": st.retry_after})
            return self.send_body(200, b"after the wait\n")
        if path == "/unavailable.txt":  # 503 with an HTTP-date Retry-After
            if n == 1:
                when = formatdate(time.time() + 2, usegmt=True)
                return self.send_body(503, b"maintenance", headers={"Retry-After": when})
            return self.send_body(200, b"back again\n")
        if path == "/flaky.txt":
            if n <= st.flaky_failures:
                return self.send_body(500, b"oops")
            return self.send_body(200, b"eventually fine\n")
        if path == "/always500.txt":
            return self.send_body(500, b"broken")
        if path == "/stall.txt":  # promises 1 MB, sends a little, then hangs
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(1024 * 1024))
            self.end_headers()
            self.wfile.write(b"partial body " * 10)
            self.wfile.flush()
            time.sleep(30)
            return
        if path.startswith("/loop/"):  # endless redirect loop
            return self.send_body(302, b"", headers={"Location": f"/loop/{n}"})
        if path == "/to-loopback.txt":
            return self.send_body(302, b"", headers={
                "Location": f"http://127.0.0.1:{self.server.server_address[1]}/ok.txt"})
        if path == "/to-metadata":
            return self.send_body(302, b"", headers={
                "Location": "http://169.254.169.254/latest/meta-data/iam/security-credentials/"})
        if path == "/huge.bin":  # claims 2 GB
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(2 * 1024**3))
            self.end_headers()
            try:
                for _ in range(64):
                    self.wfile.write(b"\0" * 65536)
            except OSError:
                pass
            return
        if path == "/bomb.txt":
            return self.send_body(200, st.bomb, headers={"Content-Encoding": "gzip"})
        if path == "/malformed.json":
            return self.send_body(200, b'[{"key": "abc", "scrape_url": ', "application/json")
        if path in ("/malformed.html", "/malformed/"):
            return self.send_body(200, b"<html><body><a href='x.txt'>x</a><table><tr><td>\xff\xfe"
                                  b"<<<>>></a></td", "text/html")
        if path == "/watch/doc":
            return self.watch(st)
        return self.send_body(404, b"not found")

    def watch(self, st: FaultState) -> None:
        import hashlib

        etag = '"' + hashlib.sha256(st.watch_body).hexdigest()[:16] + '"'
        lm = formatdate(st.watch_mtime, usegmt=True)
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        return self.send_body(200, st.watch_body, headers={"ETag": etag, "Last-Modified": lm})


def start() -> tuple[LoopbackServer, FaultState]:
    state = FaultState()
    srv = LoopbackServer(Handler, state=state).start()
    state.base = srv.url
    return srv, state
