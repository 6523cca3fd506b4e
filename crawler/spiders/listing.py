"""``listing`` sources: an HTML page that lists recent items (archive-style paste sites).

Item links are picked with ``link_css`` or ``link_xpath`` (selecting anchors,
or attributes/text directly); ``id_regex`` (group 1) turns a link into the
item id, and ``raw_url_template`` (``{id}``, ``{url}``) into the URL the body
is fetched from. Without a template the item page itself is the document.

``render = true`` fetches the listing through Chromium (content written by
JavaScript), waiting for ``wait_selector`` when set; item pages are rendered
too unless a raw URL template gives the body directly, and then wait for
``item_wait_selector`` (or network idle). See :mod:`crawler.playwright`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

from parsel import Selector, SelectorList
from scrapy import signals
from scrapy.http import Response, TextResponse

from crawler.base import SourceSpider, one_line
from crawler.links import LinkFollowingMixin, is_link_item
from crawler.playwright import PagePool, configure_crawler, render_meta
from leaksentry.config.sources import ListingSource

#: titles of bot-check interstitials (Cloudflare and similar): the listing is not there
CHALLENGE_TITLES = ("just a moment", "attention required", "checking your browser",
                    "ddos-guard", "access denied")


def item_links(selector: Selector, link_css: str | None = None,
               link_xpath: str | None = None) -> list[str]:
    """Hrefs (or text) of the nodes the listing selectors pick, in page order, no repeats.

    A selector may pick elements (their ``href``, else ``src``, else text is used)
    or attributes/text nodes (``a::attr(href)``, ``//a/@href``).
    """
    picked = SelectorList()
    if link_css:
        picked.extend(selector.css(link_css))
    if link_xpath:
        picked.extend(selector.xpath(link_xpath))
    out: list[str] = []
    for node in picked:
        if isinstance(node.root, str):
            value = node.root
        else:
            value = node.attrib.get("href") or node.attrib.get("src") or \
                " ".join(node.xpath(".//text()").getall())
        value = (value or "").strip()
        if value and not value.startswith(("javascript:", "mailto:", "#")) and value not in out:
            out.append(value)
    return out


def item_id_for(url: str, id_regex: str | None) -> str | None:
    """The item id of an absolute item URL: ``id_regex`` group 1 (or the whole match),
    else the URL itself. ``None`` when a regex is set and does not match."""
    if not id_regex:
        return url
    m = re.search(id_regex, url)
    if m is None:
        # the regex may be written for the path (``^/(\\w{8})$``) rather than the URL
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        m = re.search(id_regex, parts.path + (f"?{parts.query}" if parts.query else ""))
    if m is None:
        return None
    return m.group(1) if m.groups() else m.group(0)


class ListingSpider(LinkFollowingMixin, SourceSpider):
    name = "listing"
    source: ListingSource  # runner.SPIDERS picks this spider for its kind
    item_statuses: ClassVar[list[int]] = [404, 410]  # deleted after it was listed

    page_pool: PagePool | None = None

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> ListingSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        assert isinstance(spider, ListingSpider)
        if spider.source.render:
            configure_crawler(crawler.settings, spider.source)  # settings are not frozen yet
            spider.page_pool = PagePool(int(spider.source.concurrency or 4))
            crawler.signals.connect(spider._close_pages, signal=signals.spider_closed)
        return spider

    async def _close_pages(self, spider: Any = None) -> None:
        if self.page_pool is not None:
            await self.page_pool.close()
            self.crawler.stats.set_value("leaksentry/pages_closed_by_pool",
                                         self.page_pool.closed)

    def on_failure(self, failure: Any) -> None:
        if self.page_pool is not None:  # an included page is the errback's to close
            self.page_pool.discard(failure.request.meta.get("playwright_page"))
        super().on_failure(failure)

    async def discover(self) -> AsyncIterator[Any]:
        meta = render_meta(self.source, self.source.wait_selector) if self.source.render else {}
        for url in self.source.all_urls:
            yield self.request(url, self.parse_listing, role="discover", meta=meta,
                               dont_filter=True)

    # -- the listing -------------------------------------------------------------
    def parse_listing(self, response: Response) -> Iterator[Any]:
        if not isinstance(response, TextResponse):
            self.source_failed(f"{response.url}: listing is not HTML "
                               f"({response.headers.get('Content-Type', b'?').decode()})")
            return
        title = " ".join(response.css("title::text").getall()).strip().lower()
        if any(t in title for t in CHALLENGE_TITLES):
            self.source_failed(f"{response.url}: bot-check page instead of the listing "
                               f"({one_line(title, 60)!r})")
            return
        try:
            links = item_links(response.selector, self.source.link_css, self.source.link_xpath)
        except ValueError as exc:  # an invalid selector expression
            self.source_failed(f"{response.url}: link selector failed: {one_line(exc)}")
            return
        if not links:
            self.logger.warning("%s: no item links matched the listing selectors", response.url)
        template = self.source.raw_url_template
        item_meta = self._item_meta()
        for href in links:
            page_url = response.urljoin(href)
            if not page_url.startswith(("http://", "https://")):
                continue
            item_id = item_id_for(page_url, self.source.id_regex)
            if item_id is None:
                continue  # navigation links the selector also caught
            fetch_url = template.format(id=item_id, url=page_url) if template else page_url
            if self.want(item_id, fetch_url):
                yield self.item_request(item_id, fetch_url, doc_url=page_url, meta=item_meta)

    # -- items -------------------------------------------------------------------
    def _item_meta(self) -> dict[str, Any]:
        """Item pages are rendered when the listing is and no raw URL gives the body."""
        if not self.source.render or self.source.raw_url_template:
            return {}
        return render_meta(self.source, self.source.item_wait_selector, reuse_page=True)

    def retry_request(self, item: Any) -> Any:
        if is_link_item(item.item_id):
            return super().retry_request(item)
        return self.item_request(item.item_id, item.url, version=item.version,
                                 meta=self._item_meta())

    def parse_item(self, response: Response, item_id: str, version: str | None = None,
                   filename: str | None = None, doc_url: str | None = None) -> Iterator[Any]:
        if self.page_pool is not None:  # the body is read; the tab serves the next item
            self.page_pool.release(response.meta.get("playwright_page"))
        if response.status in (404, 410):
            self.item_gone(item_id, response.url, f"HTTP {response.status}")
            return
        item = self.make_document(response, item_id, version=version, filename=filename,
                                  url=doc_url)
        if item is None:
            return
        yield item
        if not is_link_item(item_id):
            is_html = b"html" in (response.headers.get("Content-Type") or b"").lower()
            yield from self.follow_links_in(response.body, html=is_html, base_url=response.url)
