"""`watch` sources: explicit URLs an analyst wants polled for change (a
suspicious link, a paste that may be edited).

Every run requests every URL, conditionally (``If-None-Match`` with the last
ETag, ``If-Modified-Since`` with the last Last-Modified); a 304 or a body
with the same sha256 as last time is "unchanged", anything else is a new
document. The run errors only when every watched URL failed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

from scrapy.http import Request, Response

from crawler.base import SourceSpider
from leaksentry.config.sources import WatchSource
from leaksentry.store import seen


class WatchSpider(SourceSpider):
    name = "watch"
    source: WatchSource  # runner.SPIDERS picks this spider for its kind
    item_statuses: ClassVar[list[int]] = [304]

    async def discover(self) -> AsyncIterator[Any]:
        self.answered = 0
        for url in self.source.all_urls:
            self.counters.discovered += 1
            state = seen.get_item(self.store.conn, self.source.name, url)
            if state is None:
                seen.discovered(self.store.conn, self.source.name, url, url)
            headers = {}
            if state is not None and state.status == "done":
                if state.etag:
                    headers["If-None-Match"] = state.etag
                if state.last_modified:
                    headers["If-Modified-Since"] = state.last_modified
            yield self.item_request(url, url, headers=headers)

    def retry_request(self, item: seen.SeenItem) -> Request | None:
        return None  # every watched URL is requested on every run anyway

    def parse_item(self, response: Response, item_id: str, version: str | None = None,
                   filename: str | None = None, doc_url: str | None = None) -> Iterator[Any]:
        self.answered += 1
        if response.status == 304:
            seen.unchanged(self.store.conn, self.source.name, item_id)
            return
        yield from super().parse_item(response, item_id, version=version, filename=filename,
                                      doc_url=doc_url or item_id)

    def outcome_for(self, reason: str) -> str:
        urls = len(self.source.all_urls)
        if reason == "finished" and self.counters.error is None and urls and \
                getattr(self, "answered", 0) == 0:
            self.counters.error = f"none of the {urls} watched URLs could be fetched"
        return super().outcome_for(reason)
