"""A paste site whose listing and item pages are written by JavaScript.

Not a simulator of one site but a real web page for a real browser: the raw
HTML of ``/list`` holds no item links (the script fetches ``/api/recent`` and
writes them), and the raw HTML of ``/item/{id}`` holds no content (the script
decodes it from base64). Only a spider that renders through Chromium finds the
items and the identifiers in them. The page also pulls a stylesheet, an image,
a font and a video, so tests can check that resource blocking kept Chromium
from requesting them (``hits``).
"""

from __future__ import annotations

import base64
import html
import json
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from servers.loopback import SimulatedSite

LISTING = """<!doctype html>
<html><head><meta charset="utf-8"><title>Recent pastes</title>
<link rel="stylesheet" href="/static/site.css"></head>
<body><h1>Recent pastes</h1><img src="/static/logo.png" alt="">
<video src="/static/intro.mp4"></video>
<table class="recent"><tbody id="rows"></tbody></table>
<script>
setTimeout(function () {
  fetch('/api/recent').then(function (r) { return r.json(); }).then(function (items) {
    var rows = document.getElementById('rows');
    items.forEach(function (it) {
      var tr = document.createElement('tr');
      tr.innerHTML = '<td><a class="paste" href="/item/' + it.id + '"></a></td>';
      tr.querySelector('a').textContent = it.title;
      rows.appendChild(tr);
    });
    document.body.setAttribute('data-loaded', '1');
  });
}, DELAY);
</script></body></html>"""

ITEM = """<!doctype html>
<html><head><meta charset="utf-8"><title>Paste</title>
<link rel="stylesheet" href="/static/site.css"></head>
<body><img src="/static/logo.png" alt=""><pre id="content" data-blob="BLOB"></pre>
<script>
setTimeout(function () {
  var el = document.getElementById('content');
  var bytes = Uint8Array.from(atob(el.getAttribute('data-blob')), function (c) {
    return c.charCodeAt(0); });
  el.textContent = new TextDecoder('utf-8').decode(bytes);
  el.removeAttribute('data-blob');
  el.className = 'ready';
}, DELAY);
</script></body></html>"""

STATIC = {
    "/static/site.css": ("text/css", b"@font-face{font-family:x;src:url(/static/x.woff2)}"
                         b"body{font-family:x}"),
    "/static/logo.png": ("image/png", base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=")),
    "/static/x.woff2": ("font/woff2", b"wOF2"),
    "/static/intro.mp4": ("video/mp4", b"\x00\x00\x00\x18ftypmp42"),
}


class JsListingSite(SimulatedSite):
    """``items`` maps item id -> (title, text). Thread-safe enough for tests:
    mutate ``items`` between crawls, not during one."""

    def __init__(self, items: dict[str, tuple[str, str]] | None = None, delay_ms: int = 50,
                 static_listing: bool = False):
        super().__init__()
        self.items: dict[str, tuple[str, str]] = dict(items or {})
        self.delay_ms = delay_ms
        #: also write the rows into the listing's HTML (a server-rendered baseline for benches)
        self.static_listing = static_listing

    # -- lifecycle -------------------------------------------------------------
    # -- routes ------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        path = urlsplit(h.path).path
        with self._lock:
            self.hits[path] += 1
        delay = str(self.delay_ms)
        if path in ("/", "/list"):
            page = LISTING.replace("DELAY", delay)
            if self.static_listing:
                rows = "".join(f'<tr><td><a class="paste" href="/item/{k}">{html.escape(v[0])}'
                               f"</a></td></tr>" for k, v in reversed(self.items.items()))
                page = page.replace('<tbody id="rows"></tbody>', f'<tbody id="rows">{rows}'
                                    "</tbody>").replace("setTimeout(", "if (0) setTimeout(")
            self._send(h, 200, "text/html; charset=utf-8", page.encode())
        elif path == "/api/recent":
            body = [{"id": k, "title": v[0]} for k, v in reversed(self.items.items())]
            self._send(h, 200, "application/json", json.dumps(body).encode())
        elif path.startswith("/item/") and path[6:] in self.items:
            blob = base64.b64encode(self.items[path[6:]][1].encode()).decode()
            page = ITEM.replace("DELAY", delay).replace("BLOB", blob)
            self._send(h, 200, "text/html; charset=utf-8", page.encode())
        elif path.startswith("/raw/") and path[5:] in self.items:
            self._send(h, 200, "text/plain; charset=utf-8", self.items[path[5:]][1].encode())
        elif path == "/robots.txt":
            self._send(h, 200, "text/plain", b"User-agent: *\nDisallow:\n")
        elif path in STATIC:
            ctype, data = STATIC[path]
            self._send(h, 200, ctype, data)
        else:
            self._send(h, 404, "text/plain", b"not found")

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, ctype: str, body: bytes) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Cache-Control", "no-store")
        h.end_headers()
        h.wfile.write(body)
