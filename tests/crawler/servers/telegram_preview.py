"""A faithful local simulator of Telegram's public channel preview, t.me/s/<channel>.

Why a simulator: t.me is on the internet and tests never touch it. The markup
follows the live preview pages as documented in REFERENCE.md ("Telegram
public channels") and as scraped by the public t.me/s scrapers: messages are
``div.tgme_widget_message[data-post="<channel>/<id>"]`` inside
``section.tgme_channel_history``, oldest first; the text is in
``div.tgme_widget_message_text`` (``<br/>`` line breaks, links as ``<a
href>`` with shortened link text); the time is ``time[datetime]`` inside
``a.tgme_widget_message_date`` (the message's permalink); an edited message
carries ``span.tgme_widget_message_edited``; a page shows the newest
``page_size`` messages and links older ones with
``a.tme_messages_more[data-before=<id>]`` (``/s/<channel>?before=<id>``).
A channel without a public preview redirects ``/s/<name>`` to ``/<name>``.

The same server plays two file hosts for link expansion: ``/file/<name>``
serves uploaded files, and ``/once/<name>`` deletes a file on its first
download, like file.io. ``hits`` counts requests per path.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from servers.loopback import SimulatedSite

HEAD = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title} – Telegram</title>
<meta property="og:title" content="{title}"></head>
<body class="widget_frame_base tgme_webpage_channel">
<header class="tgme_header search_collapsed"><div class="tgme_header_title">{title}</div></header>
<main class="tgme_main"><div class="tgme_container">
<section class="tgme_channel_history js-message_history">
"""
MORE = ('<div class="tgme_widget_message_centered js-messages_more_wrap">'
        '<a href="/s/{channel}?before={before}" class="tme_messages_more js-messages_more"'
        ' data-before="{before}"></a></div>\n')
MESSAGE = """<div class="tgme_widget_message_wrap js-widget_message_wrap">
<div class="tgme_widget_message text_not_supported_wrap js-widget_message" data-post="{post}"
 data-view="eyJjIjotMTAwMTIzNDU2Nzg5LCJwIjoxMjN9">
<div class="tgme_widget_message_user"><a href="{base}/{channel}"><i
 class="tgme_widget_message_user_photo bgcolor2" data-content="C"></i></a></div>
<div class="tgme_widget_message_bubble">
<div class="tgme_widget_message_author accent_color"><a class="tgme_widget_message_owner_name"
 href="{base}/{channel}"><span dir="auto">{title}</span></a></div>
{text}<div class="tgme_widget_message_footer compact js-message_footer">
<div class="tgme_widget_message_info short js-message_info">
<span class="tgme_widget_message_views">{views}</span><span class="copyonly"> views</span>
<span class="tgme_widget_message_meta">{edited}<a class="tgme_widget_message_date"
 href="{base}/{post}"><time datetime="{when}" class="time">{hhmm}</time></a></span>
</div></div></div></div></div>
"""
TEXT = '<div class="tgme_widget_message_text js-message_text" dir="auto">{body}</div>\n'
FOOT = "</section></div></main></body></html>"


@dataclass
class Message:
    id: int
    text: str | None  # plain text; URLs become links; None: a media-only post
    when: datetime
    edited: bool = False


def _render_text(text: str) -> str:
    """Telegram's HTML for message text: escaped, <br/> for newlines, links as anchors
    whose visible text is shortened."""
    out = []
    for line in text.split("\n"):
        parts = []
        for word in line.split(" "):
            if word.startswith(("http://", "https://")):
                shown = word.split("://", 1)[1]
                shown = shown if len(shown) <= 30 else shown[:29] + "…"
                parts.append(f'<a href="{html.escape(word)}" target="_blank" rel="noopener"'
                             f" onclick=\"return confirm('Open this link?\\n\\n'+this.href);\">"
                             f"{html.escape(shown)}</a>")
            else:
                parts.append(html.escape(word))
        out.append(" ".join(parts))
    return "<br/>".join(out)


class TelegramPreview(SimulatedSite):
    def __init__(self, page_size: int = 20) -> None:
        super().__init__()
        self.page_size = page_size
        self.channels: dict[str, dict] = {}  # name -> {"title", "messages": [Message]}
        self.files: dict[str, bytes] = {}  # /file/<name>
        self.once_files: dict[str, bytes] = {}  # /once/<name>: deleted on first download

    # -- state -------------------------------------------------------------------
    def add_channel(self, name: str, title: str | None = None) -> None:
        self.channels[name] = {"title": title or name, "messages": []}

    def post(self, channel: str, text: str | None) -> Message:
        msgs = self.channels[channel]["messages"]
        msg = Message(id=(msgs[-1].id + 1 if msgs else 1), text=text,
                      when=datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=len(msgs)))
        msgs.append(msg)
        return msg

    def edit(self, channel: str, msg_id: int, text: str) -> None:
        for m in self.channels[channel]["messages"]:
            if m.id == msg_id:
                m.text, m.edited = text, True

    # -- lifecycle ---------------------------------------------------------------
    # -- routes ------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        path = parts.path
        with self._lock:
            self.hits[path] += 1
        if path == "/robots.txt":
            return self._send(h, 200, "text/plain", b"User-agent: *\nAllow: /\n")
        if path.startswith("/file/") and path[6:] in self.files:
            return self._send(h, 200, "application/octet-stream", self.files[path[6:]])
        if path.startswith("/once/"):
            with self._lock:
                data = self.once_files.pop(path[6:], None)
            if data is not None:
                return self._send(h, 200, "application/octet-stream", data)
            return self._send(h, 404, "text/plain", b"file deleted")
        if path.startswith("/s/"):
            name = path[3:].strip("/")
            if name not in self.channels:
                h.send_response(302)
                h.send_header("Location", f"/{name}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return None
            before = parse_qs(parts.query).get("before", [None])[0]
            return self._channel(h, name, int(before) if before and before.isdigit() else None)
        segs = path.strip("/").split("/")
        if len(segs) == 2 and segs[0] in self.channels and segs[1].isdigit() \
                and "embed=1" in parts.query:
            return self._embed(h, segs[0], int(segs[1]))
        if path.strip("/") and "/" not in path.strip("/"):
            page = (f'<html><body><div class="tgme_page"><div class="tgme_page_title">'
                    f"{html.escape(path.strip('/'))}</div></div></body></html>")
            return self._send(h, 200, "text/html; charset=utf-8", page.encode())
        return self._send(h, 404, "text/plain", b"not found")

    def _message_html(self, name: str, m: Message) -> str:
        ch = self.channels[name]
        return MESSAGE.format(
            post=f"{name}/{m.id}", channel=name, base=f"http://127.0.0.1:{self.port}",
            title=html.escape(ch["title"]),
            text=TEXT.format(body=_render_text(m.text)) if m.text is not None else "",
            views=f"{1000 + m.id}", when=m.when.isoformat(), hhmm=m.when.strftime("%H:%M"),
            edited='<span class="tgme_widget_message_edited">edited</span>' if m.edited
            else "")

    def _embed(self, h: BaseHTTPRequestHandler, name: str, msg_id: int) -> None:
        """``/<channel>/<n>?embed=1``: the embeddable widget of one message (same markup)."""
        for m in self.channels[name]["messages"]:
            if m.id == msg_id:
                page = ('<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
                        '<body class="body_widget_post emoji_image nodark">'
                        + self._message_html(name, m) + "</body></html>")
                return self._send(h, 200, "text/html; charset=utf-8", page.encode())
        page = ('<html><body class="body_widget_post"><div class="tgme_widget_message_error">'
                "Post not found</div></body></html>")
        return self._send(h, 200, "text/html; charset=utf-8", page.encode())

    def _channel(self, h: BaseHTTPRequestHandler, name: str, before: int | None) -> None:
        ch = self.channels[name]
        msgs = [m for m in ch["messages"] if before is None or m.id < before]
        page = msgs[-self.page_size:]
        out = [HEAD.format(title=html.escape(ch["title"]))]
        if page and page[0].id > 1 and len(msgs) > len(page):
            out.append(MORE.format(channel=name, before=page[0].id))
        out.extend(self._message_html(name, m) for m in page)
        out.append(FOOT)
        self._send(h, 200, "text/html; charset=utf-8", "".join(out).encode())
