"""``telegram`` sources: a public channel's web preview, ``https://t.me/s/<channel>``.

The preview is plain HTML (REFERENCE.md): each message is
``div.tgme_widget_message[data-post="<channel>/<n>"]`` with its text in
``.tgme_widget_message_text`` and its time in ``time[datetime]``; older
messages are one page back via ``a.tme_messages_more[data-before]``
(``?before=<n>``), up to ``pages`` pages per run, stopping early once a page
holds nothing new. Each message's text is one document (item id = data-post,
URL = the message permalink); an edited message is processed again (its
version is its text's hash). With ``follow_links = true`` links to known file
hosts in a message are fetched as documents once (:mod:`crawler.links`).

``url`` may point elsewhere than ``https://t.me`` (a mirror, or a local
simulator in tests); a channel without a public preview redirects away from
``/s/`` and is reported as a source error.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import lxml.html
from parsel import Selector
from scrapy.http import Response, TextResponse

from crawler.base import SourceSpider
from crawler.links import LinkFollowingMixin
from leaksentry.config.sources import TelegramSource

DEFAULT_BASE = "https://t.me"
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    post: str  # "<channel>/<n>"
    text: str
    html: str  # the text element's HTML (for link hrefs)
    datetime: str | None
    permalink: str | None

    @property
    def version(self) -> str:
        """Changes when the message is edited."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:16]


def message_text(html: str) -> str:
    """Visible text of a message body: ``<br>`` becomes a newline, tags are dropped."""
    if not html.strip():
        return ""
    frag = lxml.html.fragment_fromstring(_BR.sub("\n", html), create_parent="div")
    return frag.text_content().strip()


def parse_messages(sel: Selector) -> list[ChannelMessage]:
    """The messages of one preview page, in page order (oldest first)."""
    out = []
    for msg in sel.css("div.tgme_widget_message[data-post]"):
        post = (msg.attrib.get("data-post") or "").strip()
        if not post:
            continue
        # the message's own text, not the quoted text of a message it replies to
        body = msg.css(".tgme_widget_message_bubble > .tgme_widget_message_text") or \
            msg.css(".tgme_widget_message_text")
        html = body[0].get() if body else ""
        out.append(ChannelMessage(
            post=post, text=message_text(html), html=html,
            datetime=msg.css("time::attr(datetime)").get(),
            permalink=msg.css("a.tgme_widget_message_date::attr(href)").get(),
        ))
    return out


def older_page(sel: Selector) -> str | None:
    """The ``data-before`` id of the link to older messages, if the page has one."""
    before = sel.css("a.tme_messages_more[data-before]::attr(data-before)").get()
    return before.strip() if before and before.strip().isdigit() else None


class TelegramSpider(LinkFollowingMixin, SourceSpider):
    name = "telegram"
    source: TelegramSource  # runner.SPIDERS picks this spider for its kind

    @property
    def base(self) -> str:
        return (self.source.url or DEFAULT_BASE).rstrip("/")

    @property
    def channel(self) -> str:
        return (self.source.channel or "").strip().lstrip("@").strip("/")

    def page_url(self, before: str | None = None) -> str:
        url = f"{self.base}/s/{self.channel}"
        return f"{url}?before={before}" if before else url

    def permalink(self, m: ChannelMessage) -> str:
        return m.permalink or f"{self.base}/{m.post}"

    def message_document(self, response: Response, m: ChannelMessage) -> Iterator[Any]:
        """The message's text as a document (unless processed before), then its links."""
        item = self.make_document(
            response, m.post, url=self.permalink(m), version=m.version,
            content=m.text.encode("utf-8"), content_type="text/plain; charset=utf-8",
            filename=m.post.replace("/", "_") + ".txt")
        if item is None:
            return
        yield item
        yield from self.follow_links_in(m.html, html=True, base_url=response.url)

    async def discover(self) -> AsyncIterator[Any]:
        yield self.request(self.page_url(), self.parse_page, role="discover", dont_filter=True,
                           cb_kwargs={"page": 1})

    def parse_page(self, response: Response, page: int) -> Iterator[Any]:
        if f"/s/{self.channel}".lower() not in urlsplit(response.url).path.lower():
            self.source_failed(f"{self.page_url()}: channel has no public preview "
                               f"(redirected to {response.url})")
            return
        if not isinstance(response, TextResponse):
            self.source_failed(f"{response.url}: preview page is not HTML")
            return
        messages = parse_messages(response.selector)
        if not messages and page == 1:
            self.logger.warning("%s: no messages on the channel preview", response.url)
        wanted = 0
        for m in reversed(messages):  # newest first: a short max_items budget gets the latest
            if not m.text:
                continue  # media-only post: the preview has no file to fetch
            if not self.want(m.post, self.permalink(m), m.version):
                continue
            wanted += 1
            yield from self.message_document(response, m)
        before = older_page(response.selector)
        if before and page < self.source.pages and wanted:
            yield self.request(self.page_url(before), self.parse_page, role="discover",
                               dont_filter=True, cb_kwargs={"page": page + 1})

    # -- re-queued messages ----------------------------------------------------------
    def retry_request(self, item: Any) -> Any:
        """A message left unprocessed by an earlier run is re-read from its embed page
        (``/<channel>/<n>?embed=1``, the same widget markup) rather than waiting for it to
        show up on the preview again."""
        if "/" in item.item_id and not item.item_id.startswith("link:"):
            return self.request(f"{self.base}/{item.item_id}?embed=1", self.parse_embed,
                                role="item", item_id=item.item_id, dont_filter=True,
                                cb_kwargs={"post": item.item_id})
        return super().retry_request(item)

    def parse_embed(self, response: Response, post: str) -> Iterator[Any]:
        if not isinstance(response, TextResponse):
            self.record_error(response.url, "embed page is not HTML")
            return
        for m in parse_messages(response.selector):
            if m.post != post or not m.text:
                continue
            yield from self.message_document(response, m)
            return
        self.item_gone(post, response.url, "message no longer on its embed page")
