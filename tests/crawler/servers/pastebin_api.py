"""A faithful local simulator of the Pastebin scraping API.

Follows https://pastebin.com/doc_scraping_api (and REFERENCE.md "Sources"):

* ``GET /api_scraping.php?limit=N`` — a JSON array, newest first, of
  ``{scrape_url, full_url, date, key, size, expire, title, syntax, user, hits}``;
  every value is a string, as the real API sends them.
* ``GET /api_scrape_item.php?i=KEY`` — the raw paste body as text/plain.
* Errors are plain-text bodies with HTTP 200:
  ``YOUR IP: 127.0.0.1 DOES NOT HAVE ACCESS. VISIT: https://pastebin.com/doc_scraping_api
  TO GET ACCESS!`` (IP not whitelisted), ``File is not ready for scraping yet. Try again
  in 1 minute.`` (a just-posted paste), ``Error, we cannot find this paste.`` (deleted).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from servers.loopback import LoopbackServer, QuietHandler

DENIED = ("YOUR IP: 127.0.0.1 DOES NOT HAVE ACCESS. VISIT: https://pastebin.com/doc_scraping_api"
          " TO GET ACCESS!")
NOT_READY = "File is not ready for scraping yet. Try again in 1 minute."
NOT_FOUND = "Error, we cannot find this paste."


@dataclass
class Paste:
    key: str
    body: str
    title: str = "Untitled"
    syntax: str = "text"
    date: int = field(default_factory=lambda: int(time.time()))
    not_ready_for: int = 0  # answer "not ready" to this many body requests first
    deleted: bool = False


class PastebinState:
    def __init__(self) -> None:
        self.pastes: list[Paste] = []
        self.denied = False
        self.deny_bodies = False  # whitelist lost between the listing and the bodies
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.base = ""

    def add(self, key: str, body: str, **kw: object) -> Paste:
        p = Paste(key, body, **kw)  # type: ignore[arg-type]
        with self.lock:
            self.pastes.insert(0, p)
        return p

    def get(self, key: str) -> Paste | None:
        return next((p for p in self.pastes if p.key == key), None)


class Handler(QuietHandler):
    server: object

    def do_GET(self) -> None:
        st: PastebinState = self.server.state  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        q = parse_qs(parts.query)
        st.hits[parts.path] += 1
        if st.denied:
            return self.send_body(200, DENIED.encode())
        if parts.path == "/api_scraping.php":
            limit = min(int(q.get("limit", ["50"])[0]), 250)
            items = [{
                "scrape_url": f"{st.base}/api_scrape_item.php?i={p.key}",
                "full_url": f"{st.base}/{p.key}",
                "date": str(p.date), "key": p.key, "size": str(len(p.body.encode())),
                "expire": "0", "title": p.title, "syntax": p.syntax, "user": "", "hits": "0",
            } for p in st.pastes[:limit]]
            return self.send_body(200, json.dumps(items).encode(), "application/json")
        if parts.path == "/api_scrape_item.php":
            key = q.get("i", [""])[0]
            st.hits[f"item:{key}"] += 1
            if st.deny_bodies:
                return self.send_body(200, DENIED.encode())
            with st.lock:
                p = st.get(key)
                if p is None or p.deleted:
                    return self.send_body(200, NOT_FOUND.encode())
                if p.not_ready_for > 0:
                    p.not_ready_for -= 1
                    return self.send_body(200, NOT_READY.encode())
            return self.send_body(200, p.body.encode())
        return self.send_body(404, b"not found")


def start() -> tuple[LoopbackServer, PastebinState]:
    state = PastebinState()
    srv = LoopbackServer(Handler, state=state).start()
    state.base = srv.url
    return srv, state
