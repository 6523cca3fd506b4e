"""`feed` sources: a JSON API listing recent items (Pastebin scraping API,
GitHub public gists, or any API described by paths in the config).

Paths are dotted, ``*`` stands for every value of a list or object
(``files.*.raw_url``) and ``""`` is the document root. When one item yields
several raw URLs (a gist with several files) each is its own document, with
item id ``ID/FILENAME``. The feed page is requested with ``If-None-Match`` when
the previous crawl saw an ETag (a 304 costs nothing against GitHub's limit).

Site quirks kept here, keyed by preset:

* pastebin — errors come back as plain text with status 200
  (https://pastebin.com/doc_scraping_api): "... DOES NOT HAVE ACCESS ..." is a
  source error (IP not whitelisted), "File is not ready for scraping yet" re-queues
  the item, "Error, we cannot find this paste" records it as gone.
* github-gists — every file is fetched from its ``raw_url`` (the list endpoint
  carries no content, and a ``truncated`` file's full text is only at its raw URL);
  the token (``token_env``) is sent to the API host only; an exhausted rate limit
  (``X-RateLimit-Remaining: 0``) whose reset is beyond ``backoff_cap`` stops
  pagination; shorter waits, Retry-After and 403/429 are honoured by the backoff
  middleware.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from scrapy.http import Request, Response

from crawler.base import SourceSpider, one_line
from crawler.middlewares.backoff import epoch_wait
from leaksentry.config.sources import FeedSource
from leaksentry.store import seen


def get_path(obj: Any, path: str) -> list[Any]:
    """Every value at a dotted path (``*`` = each element); missing parts give []."""
    values = [obj]
    if not path:
        return values
    for part in path.split("."):
        nxt: list[Any] = []
        for v in values:
            if part == "*":
                if isinstance(v, dict):
                    nxt.extend(v.values())
                elif isinstance(v, list):
                    nxt.extend(v)
            elif isinstance(v, dict) and part in v:
                nxt.append(v[part])
            elif isinstance(v, list) and part.isdigit() and int(part) < len(v):
                nxt.append(v[int(part)])
        values = nxt
    return [v for v in values if v is not None]


def first(obj: Any, path: str | None) -> Any:
    if not path:
        return None
    got = get_path(obj, path)
    return got[0] if got else None


def with_query(url: str, **params: Any) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update({k: str(v) for k, v in params.items()})
    return urlunsplit(parts._replace(query=urlencode(query)))


_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')

#: Pastebin scraping API error bodies (plain text, HTTP 200)
PASTEBIN_DENIED = re.compile(rb"DOES NOT HAVE ACCESS", re.I)
PASTEBIN_NOT_READY = re.compile(rb"not ready for scraping yet", re.I)
PASTEBIN_GONE = re.compile(rb"cannot find this paste", re.I)


class FeedSpider(SourceSpider):
    name = "feed"
    source: FeedSource  # runner.SPIDERS picks this spider for its kind

    async def discover(self) -> AsyncIterator[Any]:
        for url in self.source.all_urls:
            if self.source.query:
                url = with_query(url, **self.source.query)
            yield self.page_request(url, 1)

    def page_request(self, url: str, page: int) -> Request:
        headers = {}
        etag = seen.get_state(self.store.conn, self.source.name, f"etag:{url}")
        if etag:
            headers["If-None-Match"] = etag
        return self.request(url, self.parse_page, role="discover", headers=headers,
                            meta={"handle_httpstatus_list": [304], "ls_page": page},
                            dont_filter=True)

    # -- the listing ---------------------------------------------------------------
    def parse_page(self, response: Response) -> Iterator[Any]:
        page = response.meta.get("ls_page", 1)
        if response.status == 304:
            # the listing is unchanged: its items still count as discovered (source alive)
            count = seen.get_state(self.store.conn, self.source.name, f"count:{response.url}")
            self.counters.discovered += int(count or 0)
            self.logger.info("%s: not modified since the last crawl", response.url)
            return
        body = response.body
        if self.source.preset == "pastebin" and len(body) < 1000 and \
                PASTEBIN_DENIED.search(body):
            self.source_failed(f"{response.url}: access denied by the Pastebin scraping API"
                               " (this IP is not whitelisted on a PRO account)")
            return
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            self.source_failed(f"{response.url}: malformed JSON ({one_line(exc, 120)})")
            return
        items_path = self.source.items_path or ""
        if items_path:
            found = get_path(data, items_path)
            if not found:
                self.source_failed(f"{response.url}: no item list at items_path {items_path!r}")
                return
            items = found[0] if len(found) == 1 and isinstance(found[0], list) else found
        elif isinstance(data, list):
            items = data
        else:
            self.source_failed(f"{response.url}: expected a JSON array of items at the root")
            return
        if etag := response.headers.get("ETag"):
            seen.set_state(self.store.conn, self.source.name, f"etag:{response.url}",
                           etag.decode("latin-1"))
            seen.set_state(self.store.conn, self.source.name, f"count:{response.url}",
                           str(len(items)))
        for obj in items:
            yield from self.parse_entry(obj, response.url)
        yield from self.next_page(response, data, page, bool(items))

    def parse_entry(self, obj: Any, where: str) -> Iterator[Request]:
        s = self.source
        item_id = first(obj, s.id_path) if isinstance(obj, dict) else None
        if item_id is None or isinstance(item_id, dict | list):
            self.record_error(where, f"feed item without a usable id at {s.id_path!r}")
            return
        item_id = str(item_id)
        version = first(obj, s.updated_path)
        version = str(version) if version is not None else None
        page_url = first(obj, s.url_path)
        raw: list[Any] = []
        if s.raw_url_path:
            raw = get_path(obj, s.raw_url_path)
        elif s.raw_url_template:
            raw = [s.raw_url_template.format(id=item_id)]
        elif page_url:
            raw = [page_url]
        raw = [u for u in raw if isinstance(u, str) and u.startswith(("http://", "https://"))]
        if not raw:
            self.record_error(where, f"feed item {item_id}: no http(s) URL to fetch")
            return
        size = first(obj, s.size_path)
        digits = str(size) if isinstance(size, int | str) else ""
        if digits.isascii() and digits.isdigit() and s.max_download_size \
                and (len(digits) > 20 or int(digits) > int(s.max_download_size)):
            self.counters.discovered += 1
            self.counters.statuses["too_large"] += 1
            self.logger.warning("%s: item %s is %s bytes, over max_download_size; skipped",
                                where, item_id, size)
            return
        for url in raw:
            many = len(raw) > 1 or "*" in (s.raw_url_path or "")  # one document per file
            sub_id = f"{item_id}/{unquote(posixpath.basename(urlsplit(url).path))}" if many \
                else item_id
            doc_url = page_url if isinstance(page_url, str) and len(raw) == 1 else url
            if self.want(sub_id, url, version):
                yield self.item_request(sub_id, url, version=version, doc_url=doc_url)

    def next_page(self, response: Response, data: Any, page: int,
                  had_items: bool) -> Iterator[Request]:
        s = self.source
        if s.pagination == "none" or page >= s.max_pages or not had_items:
            return
        if response.headers.get("X-RateLimit-Remaining") == b"0":
            wait = epoch_wait(response.headers.get("X-RateLimit-Reset"))
            wait = float("inf") if wait is None else wait
            if wait > float(s.backoff_cap or 0):
                self.counters.statuses["rate_limited"] += 1
                self.logger.warning("%s: rate limit exhausted for %.0fs; not following further"
                                    " pages", response.url, wait)
                return
        nxt: str | None = None
        if s.pagination == "page":
            current = int(dict(parse_qsl(urlsplit(response.url).query)).get(s.page_param, page))
            nxt = with_query(response.url, **{s.page_param: current + 1})
        elif s.pagination == "link":
            link = (response.headers.get("Link") or b"").decode("latin-1")
            m = _LINK_NEXT.search(link)
            nxt = m.group(1) if m else None
        elif s.pagination == "next_path":
            value = first(data, s.next_path)
            nxt = response.urljoin(value) if isinstance(value, str) and value else None
        if nxt:
            yield self.page_request(nxt, page + 1)

    # -- the items ------------------------------------------------------------------
    def parse_item(self, response: Response, item_id: str, version: str | None = None,
                   filename: str | None = None, doc_url: str | None = None) -> Iterator[Any]:
        body = response.body
        if self.source.preset == "pastebin" and len(body) < 300:
            if PASTEBIN_NOT_READY.search(body):
                self.not_ready(item_id, response.url, "pastebin: not ready for scraping yet")
                return
            if PASTEBIN_GONE.search(body):
                self.item_gone(item_id, response.url, "pastebin: paste not found (deleted)")
                return
            if PASTEBIN_DENIED.search(body):
                self.source_failed(f"{response.url}: access denied by the Pastebin scraping"
                                   " API (this IP is not whitelisted)")
                self.requeue_failed(item_id, response.url, "access denied")
                return
        if self.source.preset == "pastebin":
            filename = filename or f"{item_id}.txt"
        yield from super().parse_item(response, item_id, version=version, filename=filename,
                                      doc_url=doc_url)
