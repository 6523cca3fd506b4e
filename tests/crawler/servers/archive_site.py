"""A faithful local simulator of Pastebin's public archive page.

Follows the markup of https://pastebin.com/archive (as scraped by pystemon's
``archive-regex '<a href="/(\\w{8})">.+</a></td>'`` and ``download-url
/raw/{id}``): a ``table.maintable`` whose rows hold the paste link in the
first cell, the age in the second and the syntax link (``/archive/<syntax>``)
in the third, plus a sidebar of "Public Pastes" links that a careless
selector would double-count. ``/raw/{id}`` serves the body as text/plain; a
deleted paste answers 404; ``challenge = True`` answers like Cloudflare's
browser check (403, "Just a moment...").
"""

from __future__ import annotations

import html
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from servers.loopback import SimulatedSite

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="UTF-8"><title>Pastes Archive - Pastebin.com</title></head>
<body><div class="wrap"><div class="container"><div class="content">
<div class="archive-table"><table class="maintable">
<tr class="top"><th scope="col" align="left">Name / Title</th>
<th scope="col" align="left">Posted</th><th scope="col" align="left">Syntax</th></tr>
ROWS
</table></div></div>
<div class="sidebar"><div class="sidebar__title"><a href="/archive">Public Pastes</a></div>
<ul class="sidebar__menu">SIDEBAR</ul></div>
</div></div></body></html>"""

ROW = ('<tr><td><span class="status -public"></span><a href="/{id}">{title}</a></td>'
       '<td class="td_smaller h_800">{age} sec ago</td>'
       '<td class="td_smaller h_800"><a href="/archive/text">None</a></td></tr>')
SIDE = '<li><a href="/{id}">{title}</a><div class="details">Text | {age} sec ago</div></li>'

CHALLENGE = (b"<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>"
             b"<noscript>Enable JavaScript and cookies to continue</noscript></body></html>")


class ArchiveSite(SimulatedSite):
    """``pastes`` maps 8-character ids to (title, body); newest last."""

    def __init__(self, pastes: dict[str, tuple[str, str]] | None = None):
        super().__init__()
        self.pastes: dict[str, tuple[str, str]] = dict(pastes or {})
        self.deleted: set[str] = set()
        self.challenge = False

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        path = urlsplit(h.path).path
        with self._lock:
            self.hits[path] += 1
        if path == "/robots.txt":
            return self._send(h, 200, "text/plain", b"User-agent: *\nDisallow: /api/\n")
        if self.challenge:
            return self._send(h, 403, "text/html; charset=UTF-8", CHALLENGE)
        if path == "/archive":
            newest = list(reversed(self.pastes.items()))
            rows = "\n".join(ROW.format(id=k, title=html.escape(t), age=5 * i + 3)
                             for i, (k, (t, _)) in enumerate(newest))
            side = "".join(SIDE.format(id=k, title=html.escape(t), age=5 * i + 3)
                           for i, (k, (t, _)) in enumerate(newest[:8]))
            page = PAGE.replace("ROWS", rows).replace("SIDEBAR", side)
            return self._send(h, 200, "text/html; charset=UTF-8", page.encode())
        if path.startswith("/raw/"):
            key = path[5:]
            if key in self.pastes and key not in self.deleted:
                body = self.pastes[key][1].encode()
                return self._send(h, 200, "text/plain; charset=utf-8", body)
            return self._send(h, 404, "text/html", b"<h1>Not Found (#404)</h1>")
        key = path[1:]
        if key in self.pastes and key not in self.deleted:
            page = f"<html><body><textarea class='textarea'>{html.escape(self.pastes[key][1])}"
            return self._send(h, 200, "text/html", (page + "</textarea></body></html>").encode())
        return self._send(h, 404, "text/html", b"<h1>Not Found (#404)</h1>")
