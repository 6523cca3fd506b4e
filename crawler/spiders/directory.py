"""`directory` sources: an open directory listing (Apache or nginx autoindex,
Python's ``http.server``), walked recursively within ``max_depth`` and
``max_files``; ``include``/``exclude`` globs filter file names.

Each file's item id is its URL path. Its version is the listing's row text
(date and size in Apache's and nginx's listings), so a file whose date or size
changes is fetched again; Python's listing shows neither, so there a file is
fetched once (the content hash still decides whether a re-fetch is new). A
size shown in the listing above ``max_download_size`` is skipped without a request.
Only links below the start URL on the same host are followed (no "Parent Directory").
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import unquote, urldefrag, urlsplit

from scrapy.http import Response, TextResponse

from crawler.base import SourceSpider
from leaksentry.config.sources import DirectorySource

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT])?B?\s*$", re.I)
_MULT = {None: 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def listed_size(row: str) -> int | None:
    """The size at the end of an autoindex row ("6", "1.2K", "12M"), if any."""
    m = _SIZE.search(row)
    if not m:
        return None
    # an absurd size ("9" x 400) is huge, not a crash: it is over any max_download_size
    return int(min(float(m.group(1)) * _MULT[(m.group(2) or "").upper() or None], 2.0**62))


class DirectorySpider(SourceSpider):
    name = "directory"
    source: DirectorySource  # runner.SPIDERS picks this spider for its kind

    async def discover(self) -> AsyncIterator[Any]:
        root = self.source.url
        assert root
        self.root = root if root.endswith("/") else root + "/"
        self.root_parts = urlsplit(self.root)
        self.files = 0
        yield self.request(self.root, self.parse_listing, role="discover",
                           cb_kwargs={"depth": 0})

    def _inside(self, url: str) -> bool:
        p = urlsplit(url)
        return (p.scheme, p.netloc) == (self.root_parts.scheme, self.root_parts.netloc) and \
            p.path.startswith(self.root_parts.path) and p.path != self.root_parts.path

    def _wanted_name(self, name: str) -> bool:
        s = self.source
        if s.include and not any(fnmatch.fnmatch(name, pat) for pat in s.include):
            return False
        return not any(fnmatch.fnmatch(name, pat) for pat in s.exclude)

    def parse_listing(self, response: Response, depth: int) -> Iterator[Any]:
        role = "discover" if depth == 0 else "listing"
        if not isinstance(response, TextResponse) or b"html" not in (
                response.headers.get("Content-Type") or b"html").lower():
            self.record_error(response.url, "not an HTML directory listing", role=role)
            return
        seen_here: set[str] = set()
        for a in response.xpath("//a[@href]"):
            href = a.attrib.get("href", "").strip()
            if not href or href.startswith(("?", "#", "mailto:", "javascript:")):
                continue
            url = urldefrag(response.urljoin(href))[0]
            if url in seen_here or not self._inside(url):
                continue
            seen_here.add(url)
            if urlsplit(url).path.endswith("/"):
                if depth < self.source.max_depth:
                    yield self.request(url, self.parse_listing, role="listing",
                                       cb_kwargs={"depth": depth + 1})
                continue
            name = unquote(posixpath.basename(urlsplit(url).path))
            if not self._wanted_name(name):
                continue
            if self.files >= self.source.max_files:
                if self.shard is None or self.shard.index == 0:  # once per run, not per shard
                    self.counters.statuses["max_files"] += 1
                return
            self.files += 1
            item_id = unquote(urlsplit(url).path)
            if not self.owns(item_id):  # another shard's file (processes > 1)
                continue
            row = self._row_text(a)
            size = listed_size(row) if row else None
            if size is not None and self.source.max_download_size and \
                    size > int(self.source.max_download_size):
                self.counters.discovered += 1
                self.counters.statuses["too_large"] += 1
                self.logger.warning("%s: listed as %d bytes, over max_download_size; skipped",
                                    url, size)
                continue
            if self.want(item_id, url, row or None):
                yield self.item_request(item_id, url, version=row or None, filename=name)

    @staticmethod
    def _row_text(a: Any) -> str:
        """Date and size next to the link: nginx's <pre> text after the link, or the
        other cells of Apache's table row."""
        cells = a.xpath("ancestor::tr[1]/td[not(.//a)]//text()").getall()
        if not cells:
            cells = a.xpath("following-sibling::text()[1]").getall()[:1]
            cells = [c.split("\n")[0] for c in cells]
        return " ".join(" ".join(cells).split())
