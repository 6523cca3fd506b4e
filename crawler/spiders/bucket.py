"""``bucket`` sources: public cloud storage listings.

- ``flavor = "s3"``: ``GET <bucket>?list-type=2&max-keys=N`` (ListObjectsV2),
  ``ListBucketResult`` with ``Contents{Key, LastModified, ETag, Size}``,
  ``IsTruncated`` and ``NextContinuationToken`` (AWS S3 API reference,
  ListObjectsV2).
- ``flavor = "gcs"``: the XML API's V1 listing, ``GET <bucket>?max-keys=N``
  with ``marker``/``NextMarker`` (Cloud Storage XML API, "List objects").
- ``flavor = "azure"``: ``GET <container>?restype=container&comp=list
  &maxresults=N`` returning ``EnumerationResults`` with ``Blobs/Blob{Name,
  Properties{Last-Modified, Etag, Content-Length}}`` and ``NextMarker``
  (Azure Blob REST API, "List Blobs").

Every listed key is an item (id = key) whose version is its ETag (else
Last-Modified + size): a key is fetched when it is new or its version
changed, and the fetched body is processed only when its hash is new.
Whatever the configured flavor, the parser reads any of the three documents
(S3-compatible servers answer V1 to V2 requests and vice versa).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, urlencode

from lxml import etree
from scrapy.http import Response

from crawler.base import SourceSpider, one_line
from leaksentry.config.sources import BucketSource

#: pages of one listing at most (a hostile server could paginate forever)
MAX_LIST_PAGES = 10_000


@dataclass(frozen=True, slots=True)
class ObjectEntry:
    key: str
    etag: str | None
    last_modified: str | None
    size: int | None

    @property
    def version(self) -> str | None:
        if self.etag:
            return self.etag
        if self.last_modified:
            return f"{self.last_modified}/{self.size}"
        return None


@dataclass(frozen=True, slots=True)
class ListingPage:
    kind: str  # "s3" (ListBucketResult) or "azure" (EnumerationResults)
    entries: list[ObjectEntry]
    continuation_token: str | None = None  # S3 V2
    next_marker: str | None = None  # S3/GCS V1 and Azure


class NotAListing(ValueError):
    """The body is not a bucket listing (an error document, HTML, broken XML)."""


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _child(el: Any, name: str) -> Any:
    for c in el:
        if _local(c.tag) == name:
            return c
    return None


def _text(el: Any, name: str) -> str | None:
    c = _child(el, name)
    return c.text.strip() if c is not None and c.text and c.text.strip() else None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def parse_listing(body: bytes) -> ListingPage:
    """Parse one S3/GCS ``ListBucketResult`` or Azure ``EnumerationResults`` page."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                             remove_blank_text=True)
    try:
        root = etree.fromstring(body.lstrip(b"\xef\xbb\xbf \t\r\n"), parser)
    except etree.XMLSyntaxError as exc:
        raise NotAListing(f"not XML: {one_line(exc, 120)}") from None
    name = _local(root.tag)
    if name == "ListBucketResult":
        entries = []
        for c in root:
            if _local(c.tag) != "Contents":
                continue
            key = _text(c, "Key")
            if key is None:
                continue
            etag = _text(c, "ETag")
            entries.append(ObjectEntry(key, etag.strip('"') if etag else None,
                                       _text(c, "LastModified"), _int(_text(c, "Size"))))
        truncated = (_text(root, "IsTruncated") or "false").lower() == "true"
        token = _text(root, "NextContinuationToken")
        marker = _text(root, "NextMarker")
        if truncated and not token and not marker and entries:
            marker = entries[-1].key  # V1 without a delimiter: continue after the last key
        if not truncated:
            token = marker = None
        return ListingPage("s3", entries, token, marker)
    if name == "EnumerationResults":
        blobs = _child(root, "Blobs")
        entries = []
        for b in blobs if blobs is not None else []:
            if _local(b.tag) != "Blob":
                continue
            key = _text(b, "Name")
            if key is None:
                continue
            props = _child(b, "Properties")
            props = props if props is not None else b
            etag = _text(props, "Etag") or _text(props, "ETag")
            entries.append(ObjectEntry(key, etag.strip('"') if etag else None,
                                       _text(props, "Last-Modified"),
                                       _int(_text(props, "Content-Length"))))
        return ListingPage("azure", entries, None, _text(root, "NextMarker"))
    if name == "Error":
        code = _text(root, "Code") or "?"
        raise NotAListing(f"storage error {code}: {one_line(_text(root, 'Message') or '', 120)}")
    raise NotAListing(f"unexpected XML document <{one_line(name, 40)}>")


def _split(base: str) -> tuple[str, list[tuple[str, str]]]:
    """The container/bucket URL without its query, and the query's pairs: a SAS token
    (``?sv=...&sig=...``) or a signed URL's parameters must travel with every request."""
    path, _, query = base.partition("?")
    return path.rstrip("/"), parse_qsl(query, keep_blank_values=True)


def list_url(base: str, flavor: str, *, max_keys: int, prefix: str = "",
             token: str | None = None, marker: str | None = None) -> str:
    """The listing URL of one page for the flavor's API."""
    path, extra = _split(base)
    if flavor == "azure":
        q: dict[str, Any] = {"restype": "container", "comp": "list", "maxresults": max_keys}
        if prefix:
            q["prefix"] = prefix
        if marker:
            q["marker"] = marker
    elif flavor == "gcs" or (marker and not token):
        q = {"max-keys": max_keys}
        if prefix:
            q["prefix"] = prefix
        if marker:
            q["marker"] = marker
    else:
        q = {"list-type": 2, "max-keys": max_keys}
        if prefix:
            q["prefix"] = prefix
        if token:
            q["continuation-token"] = token
    query = urlencode([*extra, *q.items()])
    return f"{path}?{query}" if flavor == "azure" else f"{path}/?{query}"


def object_url(base: str, key: str) -> str:
    path, extra = _split(base)
    url = path + "/" + quote(key, safe="/~")
    return f"{url}?{urlencode(extra)}" if extra else url


class BucketSpider(SourceSpider):
    name = "bucket"
    source: BucketSource  # runner.SPIDERS picks this spider for its kind
    item_statuses: ClassVar[list[int]] = [404, 410]  # deleted between listing and fetch

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pages = 0
        self._tokens: set[str] = set()

    async def discover(self) -> AsyncIterator[Any]:
        yield self._list_request()

    def _list_request(self, token: str | None = None, marker: str | None = None) -> Any:
        url = list_url(self.source.url or "", self.source.flavor,
                       max_keys=self.source.max_keys, prefix=self.source.prefix,
                       token=token, marker=marker)
        return self.request(url, self.parse_list, role="discover", dont_filter=True)

    def parse_list(self, response: Response) -> Iterator[Any]:
        self._pages += 1
        try:
            page = parse_listing(response.body)
        except NotAListing as exc:
            self.source_failed(f"{response.url}: {exc}")
            return
        base = self.source.url or ""
        for e in page.entries:
            if e.key.endswith("/") and not e.size:
                continue  # a "folder" placeholder object
            url = object_url(base, e.key)
            if self.want(e.key, url, e.version):
                yield self.item_request(e.key, url, version=e.version,
                                        filename=e.key.rsplit("/", 1)[-1] or None)
        nxt = page.continuation_token or page.next_marker
        if not nxt:
            return
        if nxt in self._tokens or self._pages >= MAX_LIST_PAGES:
            self.source_failed(f"{response.url}: listing pagination does not end "
                               f"(token repeated or more than {MAX_LIST_PAGES} pages)")
            return
        self._tokens.add(nxt)
        yield self._list_request(token=page.continuation_token,
                                 marker=None if page.continuation_token else page.next_marker)

    def parse_item(self, response: Response, item_id: str, version: str | None = None,
                   filename: str | None = None, doc_url: str | None = None) -> Iterator[Any]:
        if response.status in (404, 410):
            self.item_gone(item_id, response.url, f"HTTP {response.status} after listing")
            return
        yield from super().parse_item(response, item_id, version=version, filename=filename,
                                      doc_url=doc_url)
