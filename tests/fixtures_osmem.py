"""osmem-server fixtures: a real Elasticsearch-API (OpenSearch dialect) server.

``osmem-server`` (PyPI) is an in-memory OpenSearch-compatible server shipped
as a static binary in its wheel (``osmem_server/bin/osmem-server``). We run the
binary ourselves rather than through its bundled pytest plugin because tests
need to stop and restart it on the same port (the "cluster unreachable"
fault) and want a fresh, writable server, not a frozen seeded base.

Fixtures:

- ``osmem``: a function-scoped :class:`OsmemProcess` on a free loopback port.
- ``osmem_session``: one shared server for tests that only need isolation by
  index prefix (cheaper on the shared CI machine).
- ``es_compat_proxy``: see :class:`CompatProxy`.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


def osmem_binary() -> str:
    from osmem_server import resolve_binary

    return resolve_binary()


@dataclass
class OsmemProcess:
    """An ``osmem-server -no-stdin-watch`` child process bound to 127.0.0.1."""

    port: int = 0
    proc: subprocess.Popen | None = None
    url: str = ""
    version: str = ""
    _log: list[str] = field(default_factory=list)

    def start(self, timeout: float = 20.0) -> OsmemProcess:
        """Start on ``self.port`` (0 = a free port, remembered for restarts)."""
        args = [osmem_binary(), "-addr", f"127.0.0.1:{self.port}", "-no-stdin-watch", "-no-ja"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        ready: dict = {}

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                with contextlib.suppress(ValueError):
                    msg = json.loads(line)
                    if isinstance(msg, dict) and "url" in msg:
                        ready.update(msg)
                        break
            # keep draining so the pipe never fills
            for _ in self.proc.stdout:
                pass

        threading.Thread(target=read, daemon=True).start()
        while not ready:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"osmem-server did not start on port {self.port}")
            time.sleep(0.02)
        self.url = ready["url"]
        self.version = ready.get("version", "")
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> OsmemProcess:
        """Start again on the same port (the in-memory data is gone)."""
        self.stop()
        deadline = time.monotonic() + 10
        while True:
            try:
                return self.start()
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def request(self, method: str, path: str, body: object = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read().decode()
        return json.loads(text) if text else {}


@pytest.fixture
def osmem() -> Iterator[OsmemProcess]:
    server = OsmemProcess().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def osmem_session() -> Iterator[OsmemProcess]:
    server = OsmemProcess().start()
    try:
        yield server
    finally:
        server.stop()


_COMPAT = "application/vnd.elasticsearch+"


def _plain_media_type(value: str) -> str:
    """``application/vnd.elasticsearch+json; compatible-with=9`` -> ``application/json``."""
    if not value.startswith(_COMPAT):
        return value
    sub = value[len(_COMPAT):].split(";", 1)[0].strip()
    return f"application/{sub}"


class CompatProxy:
    """Test-only HTTP proxy so the official ``elasticsearch`` client can talk to osmem.

    The 8.x/9.x client always sends the compatibility media type
    (``application/vnd.elasticsearch+json; compatible-with=N``), which
    OpenSearch-dialect servers such as osmem answer with 406 (REFERENCE.md).
    This proxy rewrites only that media type in the request's ``Content-Type``
    and ``Accept`` headers to the plain one. Bodies, paths, responses and
    status codes pass through untouched (osmem already sends the
    ``X-Elastic-Product`` header the client checks), so the
    Elasticsearch backend's requests and its handling of responses are real.
    It is not a mock: every request reaches the real osmem-server.
    """

    def __init__(self, upstream: OsmemProcess,
                 intercept: Callable[[str, str, bytes | None, dict[str, str]],
                                     tuple[int, bytes] | None] | None = None,
                 ssl_context: ssl.SSLContext | None = None,
                 rewrite: Callable[[str, str, bytes | None], bytes | None] | None = None,
                 on_response: Callable[[str, str, int, bytes], bytes] | None = None) -> None:
        """``intercept(method, path, body, headers)`` may answer a request itself (a
        fault injection such as a 429 for a bulk item, or an auth check); None passes it
        on. ``rewrite(method, path, body)`` returns the body to forward, and
        ``on_response(method, path, status, data)`` the response body to return (a front
        that plays a server feature osmem lacks). With ``ssl_context`` the proxy speaks
        HTTPS (a TLS-terminating front)."""
        self.upstream = upstream
        self.intercept = intercept
        self.rewrite = rewrite
        self.on_response = on_response
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {}
                for k, v in self.headers.items():
                    if k.lower() in ("host", "connection", "content-length"):
                        continue
                    if k.lower() in ("content-type", "accept"):
                        v = _plain_media_type(v)
                    headers[k] = v
                if proxy.intercept is not None:
                    canned = proxy.intercept(self.command, self.path, body,
                                             {k.lower(): v for k, v in self.headers.items()})
                    if canned is not None:
                        status, data = canned
                        self.send_response(status)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("X-Elastic-Product", "Elasticsearch")
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                        return
                if proxy.rewrite is not None:
                    body = proxy.rewrite(self.command, self.path, body)
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream.port,
                                                      timeout=30)
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    status, resp_headers = resp.status, resp.getheaders()
                    conn.close()
                    if proxy.on_response is not None:
                        data = proxy.on_response(self.command, self.path, status, data)
                except OSError:
                    self.send_response(502)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(status)
                for k, v in resp_headers:
                    if k.lower() in ("content-length", "connection", "transfer-encoding",
                                     "date", "server"):
                        continue
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        scheme = "http"
        if ssl_context is not None:
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def es_compat_proxy(osmem: OsmemProcess) -> Iterator[CompatProxy]:
    proxy = CompatProxy(osmem)
    try:
        yield proxy
    finally:
        proxy.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


__all__ = ["CompatProxy", "OsmemProcess", "free_port"]


@pytest.fixture(scope="session")
def sinkdata():
    """tests/pipelines/sinks/sinkdata.py (Findings built from leaksentry.synth), by path."""
    import importlib.util
    import sys
    from pathlib import Path

    if "sinkdata" not in sys.modules:
        path = Path(__file__).parent / "pipelines" / "sinks" / "sinkdata.py"
        spec = importlib.util.spec_from_file_location("sinkdata", path)
        assert spec is not None and spec.loader is not None
        module = sys.modules["sinkdata"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules["sinkdata"]
