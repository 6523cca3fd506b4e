"""Link expansion: file-host links found in fetched pastes and messages.

File hosts (gofile, pixeldrain, catbox, MEGA, Drive, Dropbox ...) have no
public feed; their uploads surface as links in pastes and channel messages
(REFERENCE.md, "Sources"). This module finds such links in text or HTML,
decides per link whether it may be fetched, and rewrites share pages to their
direct-download form where the host documents one.

Some hosts destroy a file on its first download (file.io): fetching one
automatically would delete the evidence before an analyst sees it, so those
links are never fetched — they are *recorded* (`LinkDecision.action ==
"record"`) for a human to handle. Links whose key lives in the URL fragment
(MEGA, PrivateBin/0bin) cannot be fetched by a plain HTTP client and are
recorded too.

Nothing here knows Scrapy; spiders turn ``fetch`` decisions into requests.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from parsel import Selector

from crawler.middlewares.seen import LISTED

# the built-in host lists live with the [crawler] settings they are the defaults of
from leaksentry.config.sources import DEFAULT_FILE_HOSTS, DEFAULT_NEVER_FETCH_HOSTS
from leaksentry.store import seen as seen_store

#: Hosts whose links carry the decryption key in the fragment; a plain fetch
#: returns ciphertext or an app shell, so they are recorded for an analyst.
FRAGMENT_KEY_HOSTS: tuple[str, ...] = ("mega.nz", "mega.io")

Action = Literal["fetch", "record", "ignore"]

# http(s) URLs in free text; stops at whitespace, quotes and angle brackets.
_URL_RE = re.compile(r"""https?://[^\s<>"'`\\]+""", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'\""


@dataclass(frozen=True, slots=True)
class LinkDecision:
    """What to do with one link found in a document."""

    url: str  # the link as found (normalised: no trailing punctuation)
    action: Action
    host: str  # the configured host entry it matched ("" when none)
    reason: str
    fetch_url: str | None = None  # direct-download form for ``fetch``


def _clean(url: str) -> str:
    url = url.strip()
    while url and url[-1] in _TRAILING:
        # keep a closing bracket that balances an opening one inside the URL
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        url = url[:-1]
    return url


def extract_links(text: str, *, html: bool = False, base_url: str | None = None) -> list[str]:
    """Return http(s) links in ``text`` in order of appearance, without repeats.

    With ``html=True`` anchors' ``href`` attributes are read as well as the
    visible text (channel messages show shortened link text).
    """
    found: list[str] = []
    if html:
        sel = Selector(text=text or "<html></html>")
        for href in sel.css("a::attr(href)").getall():
            href = href.strip()
            if base_url:
                href = urljoin(base_url, href)
            if href.lower().startswith(("http://", "https://")):
                found.append(_clean(href))
        text = " ".join(sel.xpath("//text()").getall())
    found.extend(_clean(m.group(0)) for m in _URL_RE.finditer(text or ""))
    seen: set[str] = set()
    out: list[str] = []
    for url in found:
        if url and url not in seen:
            seen.add(url)
            out.append(url)
    return out


def host_of(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower().rstrip(".")
    except ValueError:
        return ""


def match_host(host: str, entries: Iterable[str]) -> str | None:
    """The configured entry ``host`` equals or is a subdomain of, if any."""
    host = host.lower().rstrip(".")
    for entry in entries:
        e = entry.lower().strip().lstrip(".").rstrip(".")
        if e and (host == e or host.endswith("." + e)):
            return e
    return None


def direct_url(url: str) -> str:
    """Rewrite a share page to the host's documented direct-download URL.

    - pixeldrain ``/u/ID`` -> ``/api/file/ID`` (pixeldrain API docs)
    - Dropbox ``?dl=0`` -> ``?dl=1`` (Dropbox "force download" help page)
    - Google Drive ``/file/d/ID/view`` or ``open?id=ID`` -> ``/uc?export=download&id=ID``

    Anything else is returned unchanged.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if match_host(host, ("pixeldrain.com",)):
        m = re.fullmatch(r"/u/([A-Za-z0-9]+)/?", parts.path)
        if m:
            return urlunsplit((parts.scheme, parts.netloc, f"/api/file/{m.group(1)}", "", ""))
    if match_host(host, ("dropbox.com",)):
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "dl"]
        query.append(("dl", "1"))
        return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
    if host == "drive.google.com":
        m = re.fullmatch(r"/file/d/([A-Za-z0-9_-]+)(?:/.*)?", parts.path)
        file_id = m.group(1) if m else dict(parse_qsl(parts.query)).get("id")
        if file_id:
            download = urlencode({"export": "download", "id": file_id})
            return urlunsplit((parts.scheme, parts.netloc, "/uc", download, ""))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))


def decide(
    url: str,
    *,
    file_hosts: Iterable[str] = DEFAULT_FILE_HOSTS,
    never_fetch_hosts: Iterable[str] = DEFAULT_NEVER_FETCH_HOSTS,
) -> LinkDecision:
    """Decide whether a link found in a document is fetched, recorded or ignored.

    Destructive hosts win over the file-host list: a file.io link is recorded
    even if someone adds file.io to ``file_hosts``.
    """
    host = host_of(url)
    if not host or not url.lower().startswith(("http://", "https://")):
        return LinkDecision(url, "ignore", "", "not an http(s) URL with a host")
    bad = match_host(host, never_fetch_hosts)
    if bad:
        return LinkDecision(url, "record", bad, "host deletes files on download; not fetched")
    entry = match_host(host, file_hosts)
    if not entry:
        return LinkDecision(url, "ignore", "", "not a configured file host")
    if match_host(host, FRAGMENT_KEY_HOSTS):
        return LinkDecision(url, "record", entry, "key in URL fragment; needs a browser")
    return LinkDecision(url, "fetch", entry, "configured file host", fetch_url=direct_url(url))


def expand(
    text: str,
    *,
    html: bool = False,
    base_url: str | None = None,
    file_hosts: Iterable[str] = DEFAULT_FILE_HOSTS,
    never_fetch_hosts: Iterable[str] = DEFAULT_NEVER_FETCH_HOSTS,
) -> Iterator[LinkDecision]:
    """Decisions for every file-host link in ``text`` (ignored links are skipped)."""
    file_hosts = tuple(file_hosts)
    never_fetch_hosts = tuple(never_fetch_hosts)
    done: set[str] = set()
    for url in extract_links(text, html=html, base_url=base_url):
        d = decide(url, file_hosts=file_hosts, never_fetch_hosts=never_fetch_hosts)
        key = d.fetch_url or d.url
        if d.action == "ignore" or key in done:
            continue
        done.add(key)
        yield d


# -- spider side -------------------------------------------------------------------

#: item ids of link-expansion documents start with this (the rest is the fetched URL)
LINK_PREFIX = "link:"
_MAX_SCAN_CHARS = 4_000_000


class LinkFollowingMixin:
    """For :class:`crawler.base.SourceSpider` subclasses: fetch file-host links found in a
    document once (``link:<url>`` items in the seen store) and record never-fetch links.

    Only the documents the source itself lists are searched for links (depth 1):
    files fetched from file hosts are not expanded further.
    """

    def follow_links_in(self, text: str | bytes, *, html: bool = False,
                        base_url: str | None = None) -> Iterator[Any]:
        spider: Any = self
        if not spider.source.follow_links:
            return
        if isinstance(text, bytes):
            text = text[:_MAX_SCAN_CHARS].decode("utf-8", errors="replace")
        s = spider.settings
        for d in expand(text[:_MAX_SCAN_CHARS], html=html, base_url=base_url,
                        file_hosts=s.getlist("LEAKSENTRY_FILE_HOSTS"),
                        never_fetch_hosts=s.getlist("LEAKSENTRY_NEVER_FETCH_HOSTS")):
            target = d.fetch_url or d.url
            item_id = LINK_PREFIX + target
            if d.action == "record":
                self.record_unfetched_link(item_id, d)
                continue
            # fetched when the seen filter wants it (crawler.middlewares.seen)
            yield spider.request(target, self.parse_link, role="item", item_id=item_id,
                                 dont_filter=True, meta={LISTED: (item_id, target, None)},
                                 cb_kwargs={"item_id": item_id, "doc_url": d.url})

    def record_unfetched_link(self, item_id: str, decision: LinkDecision) -> None:
        """A link that must not be fetched (file.io, key in fragment): kept in the seen
        store as ``gone`` with the reason, so it is visible and never fetched later."""
        spider: Any = self
        state = seen_store.get_item(spider.store.conn, spider.source.name, item_id)
        if state is None:
            seen_store.gone(spider.store.conn, spider.source.name, item_id,
                      f"not fetched: {decision.reason} ({decision.host})")
            spider.count_status("link_not_fetched")
            spider.logger.warning("link not fetched (%s): %s", decision.reason, decision.url)

    def retry_request(self, item: Any) -> Any:
        """Re-queued link items go back to :meth:`parse_link` (not the kind's item parser)."""
        if is_link_item(item.item_id) and item.url:
            spider: Any = self
            return spider.request(item.url, self.parse_link, role="item", item_id=item.item_id,
                                  dont_filter=True, cb_kwargs={"item_id": item.item_id})
        return super().retry_request(item)  # type: ignore[misc]

    def parse_link(self, response: Any, item_id: str, doc_url: str | None = None,
                   version: str | None = None, filename: str | None = None) -> Iterator[Any]:
        spider: Any = self
        if response.status in (404, 410):  # when the spider lets these reach callbacks
            spider.item_gone(item_id, response.url, f"HTTP {response.status}")
            return
        item = spider.make_document(response, item_id, url=doc_url or response.url)
        if item is not None:
            yield item


def is_link_item(item_id: str | None) -> bool:
    return bool(item_id) and str(item_id).startswith(LINK_PREFIX)
