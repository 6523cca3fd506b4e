"""`/metrics` (Prometheus text format) and `/healthz` (JSON) on a loopback port.

A single-threaded stdlib HTTP server in a daemon thread: scrapes are rare and
small, and one thread keeps the state-store reads in one place.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger("leaksentry.scheduler.http")


class _Server(HTTPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, addr: tuple[str, int], registry: CollectorRegistry,
                 health: Callable[[], dict[str, Any]]) -> None:
        self.registry = registry
        self.health = health
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        super().__init__(addr, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            try:
                body = generate_latest(self.server.registry)
            except Exception as exc:  # a broken collector must not kill the endpoint
                log.error("metrics: %s", exc)
                self._send(500, b"metrics unavailable\n", "text/plain")
                return
            self._send(200, body, CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            health = self.server.health()
            code = 200 if health.get("status") == "ok" else 503
            self._send(code, (json.dumps(health, sort_keys=True) + "\n").encode(),
                       "application/json")
        else:
            self._send(404, b"not found: try /metrics or /healthz\n", "text/plain")

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class MetricsServer:
    """Serves until :meth:`stop`; ``port`` is the bound port (useful with port 0)."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry,
                 health: Callable[[], dict[str, Any]]) -> None:
        self._server = _Server((host, port), registry, health)
        self.host = host
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.2},
                                        name="metrics-http", daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
