"""The demo's local sites: small threaded HTTP servers on loopback, free ports.

- :class:`PasteFeedSite` simulates the Pastebin scraping API (REFERENCE.md):
  ``/api_scraping.php?limit=N`` lists recent pastes as JSON,
  ``/api_scrape_item.php?i=KEY`` returns a body, unknown keys get the
  documented plain-text error.
- :class:`StaticSite` serves a directory with Python's own ``http.server``
  (a real open-directory listing; also the JavaScript page and the watched link).
- :class:`WebhookReceiver` is the security team's end: it verifies the
  webhook's HMAC signature (``X-LeakSentry-Signature`` over timestamp + "." +
  body, see pipelines/alerts/channels/webhook.py) and records each delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from leaksentry.demo.scenario import Paste

LOOPBACK = "127.0.0.1"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class LocalSite:
    """A threaded HTTP server on 127.0.0.1 and a free port, run in a daemon thread."""

    name = "site"

    def __init__(self) -> None:
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def handler(self) -> Any:  # a BaseHTTPRequestHandler factory
        raise NotImplementedError

    def start(self) -> LocalSite:
        self._server = _Server((LOOPBACK, 0), self.handler())
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name=f"demo-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def port(self) -> int:
        assert self._server is not None, "site not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def __enter__(self) -> LocalSite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _QuietHandler(BaseHTTPRequestHandler):
    server_version = "demo-site/1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the demo prints its own report; request lines would only be noise

    def _send(self, status: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _QuietStaticHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class StaticSite(LocalSite):
    """A directory served by Python's ``http.server`` (listing pages included)."""

    def __init__(self, root: Path, name: str = "static") -> None:
        super().__init__()
        self.root = Path(root)
        self.name = name

    def handler(self) -> Any:
        return partial(_QuietStaticHandler, directory=str(self.root))


# -- the Pastebin scraping API --------------------------------------------------------

NOT_FOUND_BODY = b"Error, we cannot find this paste."


def scraping_entry(base: str, p: Paste) -> dict[str, str]:
    """One element of ``api_scraping.php``'s JSON array, fields as Pastebin documents them."""
    return {
        "scrape_url": f"{base}/api_scrape_item.php?i={p.key}",
        "full_url": f"{base}/{p.key}",
        "date": str(p.date),
        "key": p.key,
        "size": str(len(p.body)),
        "expire": "0",
        "title": p.title,
        "syntax": p.syntax,
        "user": p.user,
        "hits": "0",
    }


class PasteFeedSite(LocalSite):
    """Serves pastes in the Pastebin scraping API format, newest first."""

    name = "paste-feed"

    def __init__(self, pastes: Sequence[Paste]) -> None:
        super().__init__()
        self.pastes = sorted(pastes, key=lambda p: p.date, reverse=True)
        self.requests: list[str] = []  # paths requested, for tests and the report

    def handler(self) -> Any:
        site = self

        class Handler(_QuietHandler):
            def do_GET(self) -> None:
                site.requests.append(self.path)
                u = urlsplit(self.path)
                q = parse_qs(u.query)
                if u.path == "/api_scraping.php":
                    try:
                        limit = max(1, min(250, int(q.get("limit", ["50"])[0])))
                    except ValueError:
                        limit = 50
                    items = [scraping_entry(site.url, p) for p in site.pastes[:limit]]
                    self._send(200, json.dumps(items).encode(), "application/json")
                elif u.path in ("/api_scrape_item.php", "/api_scrape_item_meta.php"):
                    key = q.get("i", [""])[0]
                    paste = next((p for p in site.pastes if p.key == key), None)
                    if paste is None:
                        self._send(200, NOT_FOUND_BODY)
                    elif u.path.endswith("_meta.php"):
                        self._send(200, json.dumps([scraping_entry(site.url, paste)]).encode(),
                                   "application/json")
                    else:
                        self._send(200, paste.body)
                elif u.path == "/robots.txt":
                    self._send(200, b"User-agent: *\nDisallow:\n")
                else:
                    self._send(404, b"not found")

            do_HEAD = do_GET

        return Handler


# -- the security team's webhook receiver --------------------------------------------

@dataclass(slots=True)
class Delivery:
    """One webhook POST as the receiver saw it."""

    idempotency_key: str
    event: str
    verified: bool
    reason: str  # why it was rejected, "" when verified
    body: dict[str, Any] | None
    raw: bytes = field(repr=False, default=b"")
    headers: dict[str, str] = field(default_factory=dict, repr=False)


class WebhookReceiver(LocalSite):
    """Verifies ``X-LeakSentry-Signature`` and the timestamp window, records deliveries.

    A delivery with a bad or missing signature, or a stale timestamp (a replay),
    is answered 401 and recorded as rejected. A repeated ``Idempotency-Key`` is
    answered 200 (the sender must stop retrying) and counted as a duplicate.
    """

    name = "webhook"

    def __init__(self, secret: str, max_skew: float = 300.0) -> None:
        super().__init__()
        self.secret = secret
        self.max_skew = max_skew
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()

    @property
    def hook_url(self) -> str:
        return f"{self.url}/hooks/leaksentry"

    def verify(self, headers: dict[str, str], body: bytes) -> str:
        """'' when the signature and timestamp are good, else the reason."""
        stamp = headers.get("x-leaksentry-timestamp", "")
        sig = headers.get("x-leaksentry-signature", "")
        if not stamp or not sig:
            return "unsigned"
        try:
            skew = abs(time.time() - int(stamp))
        except ValueError:
            return "bad timestamp"
        if skew > self.max_skew:
            return "stale timestamp (replay?)"
        mac = hmac.new(self.secret.encode(), stamp.encode() + b"." + body, hashlib.sha256)
        if not hmac.compare_digest("sha256=" + mac.hexdigest(), sig):
            return "bad signature"
        return ""

    @property
    def accepted(self) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.verified]

    def unique(self) -> list[Delivery]:
        """Verified deliveries, first of each idempotency key."""
        seen: set[str] = set()
        out = []
        for d in self.accepted:
            if d.idempotency_key not in seen:
                seen.add(d.idempotency_key)
                out.append(d)
        return out

    def duplicates(self) -> int:
        return len(self.accepted) - len(self.unique())

    def handler(self) -> Any:
        site = self

        class Handler(_QuietHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                reason = site.verify(headers, raw)
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body, reason = None, reason or "body is not JSON"
                with site._lock:
                    site.deliveries.append(Delivery(
                        idempotency_key=headers.get("idempotency-key", ""),
                        event=headers.get("x-leaksentry-event", ""), verified=not reason,
                        reason=reason, body=body, raw=raw, headers=headers))
                if reason:
                    self._send(401, reason.encode())
                else:
                    self._send(200, b'{"ok":true}', "application/json")

        return Handler
