"""[[sources]] and [crawler] configuration.

A source is one model per ``kind`` (:class:`FeedSource`, :class:`ListingSource`, ...),
chosen by its ``kind`` field: :data:`SourceConfig` is their discriminated union. Each kind
declares only the fields it uses, so a field of another kind is named as such
(``sources[2] (pastebin).link_css: a field of kind "listing" only ...``), and a field a
kind needs is checked with a message that names it (``sources[2] (pastebin).items_path:
required for kind "feed"``). ``preset = "pastebin"`` fills in the fields of a known site
(see ``leaksentry.config.presets``); anything set explicitly in the file wins over the
preset.

Politeness and safety fields (:class:`Politeness`) are declared once: ``[crawler]`` and
every source have them; those a source leaves unset inherit the ``[crawler]`` values:
:meth:`CrawlerConfig.effective` returns the source with them filled.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Self, TypeVar, get_args
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    BeforeValidator,
    ByteSize,
    Discriminator,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from leaksentry.config.base import Duration, StrictModel
from leaksentry.config.presets import PRESETS

if TYPE_CHECKING:
    from pydantic import TypeAdapter

SourceKind = Literal["feed", "listing", "directory", "bucket", "watch", "telegram"]
SOURCE_KINDS: tuple[SourceKind, ...] = get_args(SourceKind)
#: kinds whose pages are HTML meant for people: robots.txt is obeyed by default
HTML_KINDS = frozenset({"listing", "directory", "telegram"})

#: Hosts whose links are fetched as documents by default (subdomains included): file hosts
#: with no public feed, whose uploads surface as links in pastes and channel messages.
DEFAULT_FILE_HOSTS: tuple[str, ...] = (
    "gofile.io", "pixeldrain.com", "catbox.moe", "mega.nz", "mega.io", "drive.google.com",
    "docs.google.com", "dropbox.com", "dropboxusercontent.com", "mediafire.com",
    "transfer.sh", "anonfiles.com", "sendspace.com", "wetransfer.com",
)
#: Hosts that delete a file when it is downloaded: never fetched automatically.
DEFAULT_NEVER_FETCH_HOSTS: tuple[str, ...] = ("file.io",)

DEFAULT_USER_AGENT = "leaksentry/0.1 (+https://github.com/leaksentry/leaksentry; leak monitoring)"


#: defaults that more than one layer needs (the crawl's own fallbacks, the daemon's watchdog,
#: the run record): named once here, imported where needed
DEFAULT_BACKOFF_BASE = 2.0
DEFAULT_BACKOFF_CAP = 600.0
DEFAULT_CRAWL_TIMEOUT = 900.0
DEFAULT_UNHEALTHY_AFTER = 3


class Politeness(StrictModel):
    """Politeness and safety: ``[crawler]`` sets the defaults, a source may override each
    (a field a source leaves unset takes ``[crawler]``'s value, see
    :meth:`CrawlerConfig.effective`)."""

    user_agent: str = DEFAULT_USER_AGENT
    concurrency: int = Field(4, ge=1, le=64)  # requests in flight per source
    delay: Duration = 0.0  # seconds between requests to one site
    autothrottle: bool = False
    retry_max: int = Field(3, ge=0, le=20)
    backoff_base: Duration = DEFAULT_BACKOFF_BASE  # first retry waits this long, doubling
    #: no single wait longer than this (Retry-After included)
    backoff_cap: Duration = DEFAULT_BACKOFF_CAP
    max_download_size: ByteSize = ByteSize(50 * 1024 * 1024)
    download_timeout: Duration = 60.0
    max_redirects: int = Field(5, ge=0, le=30)
    timeout: Duration = DEFAULT_CRAWL_TIMEOUT  # a whole crawl
    max_items: int = Field(1000, ge=1)  # documents fetched per run, at most
    not_ready_delay: Duration = 60.0  # "not ready yet" items are re-queued this far ahead
    #: consecutive failed runs after which the source is reported unhealthy
    unhealthy_after: int = Field(DEFAULT_UNHEALTHY_AFTER, ge=1)


_S = TypeVar("_S", bound="SourceBase")


class CrawlerConfig(Politeness):
    """Defaults every source inherits, and crawler-wide lists."""

    scan_workers: int = Field(2, ge=1, le=32)  # documents scanned at once during a crawl
    chromium_path: str = "/usr/bin/chromium"
    #: pinned addresses, like curl --resolve: {"paste.example" = ["93.184.216.34"]};
    #: used by the network guard and for connecting (split-horizon DNS, tests)
    resolve: dict[str, list[str]] = Field(default_factory=dict)
    #: hosts whose links in pastes/messages are fetched as documents (link expansion);
    #: setting it REPLACES the built-in list — to add hosts, use extra_file_hosts
    file_hosts: list[str] = Field(default_factory=lambda: list(DEFAULT_FILE_HOSTS))
    #: hosts added to file_hosts (the built-in list stays)
    extra_file_hosts: list[str] = Field(default_factory=list)
    #: hosts that destroy a file when it is downloaded: links are recorded, never fetched
    never_fetch_hosts: list[str] = Field(default_factory=lambda: list(DEFAULT_NEVER_FETCH_HOSTS))

    @field_validator("resolve")
    @classmethod
    def _resolve(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        import ipaddress

        for host, addresses in v.items():
            for a in addresses:
                try:
                    ipaddress.ip_address(a)
                except ValueError:
                    raise ValueError(f"{host}: {a!r} is not an IP address") from None
        return {h.lower().rstrip("."): a for h, a in v.items()}

    @property
    def all_file_hosts(self) -> list[str]:
        """``file_hosts`` plus ``extra_file_hosts``: the hosts whose links are fetched."""
        return list(dict.fromkeys([*self.file_hosts, *self.extra_file_hosts]))

    def effective(self, source: _S) -> _S:
        """The source with every politeness/safety field it left unset taken from these
        defaults, and ``obey_robots`` by kind when unset."""
        updates: dict[str, Any] = {name: getattr(self, name) for name in Politeness.model_fields
                                   if name not in source.model_fields_set}
        if source.obey_robots is None:
            updates["obey_robots"] = source.kind in HTML_KINDS
        return source.model_copy(update=updates)


#: (field, message) pairs of a source's cross-field checks
Problems = list[tuple[str, str]]


class SourceBase(Politeness):
    """The fields every ``[[sources]]`` table has, whatever its kind."""

    #: the kind needs ``url`` (watch takes ``urls``; telegram defaults to t.me)
    URL_REQUIRED: ClassVar[bool] = True

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    kind: SourceKind
    preset: str | None = None
    enabled: bool = True
    url: str | None = None
    urls: list[str] = Field(default_factory=list)

    # -- schedule (read by the daemon) --------------------------------------------
    every: Duration | None = None
    cron: str | None = None
    jitter: Duration = 0.0

    # -- politeness and safety: Politeness's fields (unset: [crawler]'s), and -------------
    obey_robots: bool | None = None  # default: true for HTML kinds
    proxy: str | None = None  # http://, https://, socks5://, socks5h://
    # private ranges (loopback, RFC 1918, unique-local, 100.64/10) for tests and intranets;
    # cloud-metadata and link-local addresses stay refused
    allow_private: bool = False
    # with allow_private: only these hosts ("host" or "host:port") may be private
    private_hosts: list[str] = Field(default_factory=list)
    headers: dict[str, str] = Field(default_factory=dict)
    token_env: str | None = None  # environment variable holding an API token
    token_header: str = "Authorization"
    token_format: str = "Bearer {token}"

    @property
    def all_urls(self) -> list[str]:
        return ([self.url] if self.url else []) + [u for u in self.urls if u != self.url]

    @property
    def rendered(self) -> bool:
        """Its pages are fetched through Chromium (only a listing with ``render = true``)."""
        return False

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(v)
        except ValueError as exc:
            raise ValueError(f"invalid cron expression {v!r}: {exc}") from None
        return v

    @field_validator("proxy")
    @classmethod
    def _proxy(cls, v: str | None) -> str | None:
        if v and not v.startswith(("http://", "https://", "socks5://", "socks5h://",
                                   "socks4://")):
            raise ValueError("must start with http://, https://, socks5:// or socks5h://")
        return v

    @field_validator("url", "urls")
    @classmethod
    def _urls(cls, v: str | list[str] | None) -> str | list[str] | None:
        for u in [v] if isinstance(v, str) else (v or []):
            if not u.startswith(("http://", "https://")):
                raise ValueError(f"{u!r} is not an http(s) URL")
        return v

    def _required(self, problems: Problems, name: str, why: str | None = None) -> None:
        if not getattr(self, name):
            problems.append((name, why or f'required for kind "{self.kind}"'))

    def _problems(self) -> Problems:
        """Checks across fields; each kind adds its own to these."""
        problems: Problems = []
        if self.every is not None and self.cron is not None:
            problems.append(("cron", "set either every or cron, not both"))
        if self.every is not None and self.every <= 0:
            problems.append(("every", "must be more than zero"))
        if self.URL_REQUIRED:
            self._required(problems, "url")
        if self.proxy and self.proxy.startswith("socks") and not self.rendered:
            problems.append(("proxy", "SOCKS proxies work only with render = true (Chromium);"
                             " for plain HTTP use an HTTP proxy in front of Tor"
                             " (Tor's HTTPTunnelPort, privoxy)"))
        if self.private_hosts and not self.allow_private:
            problems.append(("private_hosts", "needs allow_private = true"))
        for entry in self.private_hosts:
            if not entry.strip() or "/" in entry or " " in entry.strip():
                problems.append(("private_hosts", f"{entry!r}: expected host or host:port"))
        return problems

    @model_validator(mode="after")
    def _check(self) -> Self:
        if problems := self._problems():
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [InitErrorDetails(type=PydanticCustomError("source_field", msg), loc=(f,),
                                  input=getattr(self, f, None)) for f, msg in problems],
            )
        return self


class RawUrlTemplate(StrictModel):
    """Feed and listing: where an item's body is, from its id."""

    raw_url_template: str | None = None  # e.g. "https://host/raw/{id}"


class LinkFollowing(StrictModel):
    """Listing and telegram: links to file hosts found in their documents."""

    follow_links: bool = False  # fetch links to known file hosts found in documents


class Sharded(StrictModel):
    """Directory and bucket: one crawl split over several processes."""

    # crawl in this many processes (Scrapy uses one core each); the items are split
    # between them by a hash of their id, the run is recorded once
    processes: int = Field(1, ge=1, le=32)


class FeedSource(RawUrlTemplate, SourceBase):
    """A JSON API listing recent items. Paths are dotted ("data.items", "files.*.raw_url");
    "" means the document root."""

    kind: Literal["feed"]
    items_path: str | None = None
    id_path: str | None = None
    url_path: str | None = None  # the item's page (recorded as the document URL)
    raw_url_path: str | None = None  # where the body is fetched from
    size_path: str | None = None
    date_path: str | None = None
    updated_path: str | None = None  # a changed value means "edited": fetch again
    pagination: Literal["none", "page", "link", "next_path"] = "none"
    page_param: str = "page"
    next_path: str | None = None  # for pagination = "next_path"
    max_pages: int = Field(1, ge=1, le=1000)
    query: dict[str, str] = Field(default_factory=dict)  # extra query parameters

    def _problems(self) -> Problems:
        problems = super()._problems()
        if self.items_path is None:
            problems.append(("items_path", 'required for kind "feed" ("" for the root)'))
        self._required(problems, "id_path")
        if not (self.raw_url_path or self.raw_url_template or self.url_path):
            problems.append(("raw_url_path",
                             'kind "feed" needs raw_url_path, raw_url_template or url_path'))
        if self.pagination == "next_path":
            self._required(problems, "next_path", 'required when pagination = "next_path"')
        return problems


class ListingSource(LinkFollowing, RawUrlTemplate, SourceBase):
    """An HTML page listing recent items, optionally rendered by Chromium."""

    kind: Literal["listing"]
    link_css: str | None = None
    link_xpath: str | None = None
    id_regex: str | None = None  # group 1 of this regex on the link is the item id

    # -- rendering (render = true) --------------------------------------------------
    render: bool = False
    wait_selector: str | None = None
    item_wait_selector: str | None = None  # rendered item pages: wait for this (else idle)
    wait_timeout: Duration = 15.0
    block_resources: bool = True

    @property
    def rendered(self) -> bool:
        return self.render

    def _problems(self) -> Problems:
        problems = super()._problems()
        if not (self.link_css or self.link_xpath):
            problems.append(("link_css", 'kind "listing" needs link_css or link_xpath'))
        for f in ("wait_selector", "item_wait_selector"):
            if getattr(self, f) and not self.render:
                problems.append((f, "only used when the page is rendered: set render = true"
                                    " (kind \"listing\"), or remove it"))
        return problems


class DirectorySource(Sharded, SourceBase):
    """An open directory listing (autoindex pages), walked to ``max_depth``."""

    kind: Literal["directory"]
    max_depth: int = Field(3, ge=0, le=50)
    max_files: int = Field(10000, ge=1)
    include: list[str] = Field(default_factory=list)  # glob patterns on the file name
    exclude: list[str] = Field(default_factory=list)


class BucketSource(Sharded, SourceBase):
    """A publicly listable S3, GCS or Azure bucket."""

    kind: Literal["bucket"]
    flavor: Literal["s3", "gcs", "azure"] = "s3"
    prefix: str = ""
    max_keys: int = Field(1000, ge=1, le=5000)


class WatchSource(SourceBase):
    """Known links (``url`` or ``urls``), fetched again when they change."""

    URL_REQUIRED: ClassVar[bool] = False
    kind: Literal["watch"]

    def _problems(self) -> Problems:
        problems = super()._problems()
        if not (self.url or self.urls):
            problems.append(("urls", 'kind "watch" needs url or urls'))
        return problems


class TelegramSource(LinkFollowing, SourceBase):
    """A public channel's web preview (``https://t.me/s/NAME``)."""

    URL_REQUIRED: ClassVar[bool] = False
    kind: Literal["telegram"]
    channel: str | None = None
    pages: int = Field(1, ge=1, le=100)

    def _problems(self) -> Problems:
        self._split_preview_url()
        problems = super()._problems()
        self._required(problems, "channel")
        return problems

    def _split_preview_url(self) -> None:
        """A telegram ``url`` may be the site (``https://t.me``) or the channel's preview
        link as a browser shows it (``https://t.me/s/NAME``): the latter is split into the
        site and ``channel`` (which it must agree with), so no ``/s/NAME/s/NAME``."""
        if not self.url:
            return
        parts = urlsplit(self.url)
        m = re.fullmatch(r"(.*?)/s/([A-Za-z0-9_]+)/?", parts.path)
        if not m:
            return
        name = m.group(2)
        channel = (self.channel or "").strip().lstrip("@").strip("/")
        if channel and channel.lower() != name.lower():
            raise ValueError(f"url is the preview of channel {name!r} but channel ="
                             f" {self.channel!r}: set one of them")
        site = urlunsplit((parts.scheme, parts.netloc, m.group(1), "", ""))
        # assigning re-runs the validators (validate_assignment): set both at once
        object.__setattr__(self, "url", site)
        object.__setattr__(self, "channel", channel or name)


#: the model of each kind
SOURCE_MODELS: dict[str, type[SourceBase]] = {
    "feed": FeedSource, "listing": ListingSource, "directory": DirectorySource,
    "bucket": BucketSource, "watch": WatchSource, "telegram": TelegramSource,
}


def _one_of(names: list[str]) -> str:
    quoted = [f'"{n}"' for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _prepare(data: Any) -> Any:
    """Before the union picks a model by ``kind``: fill in the preset, then name a missing
    or unknown kind, and a field that belongs to other kinds, at that field."""
    if not isinstance(data, Mapping):
        return data
    if data.get("preset"):
        preset = PRESETS.get(data["preset"])
        if preset is None:
            known = ", ".join(sorted(PRESETS))
            raise PydanticCustomError(
                "unknown_preset", "unknown preset '{preset}' (known: {known})",
                {"preset": data["preset"], "known": known})
        data = {**preset, **data}
    kind = data.get("kind")
    if kind not in SOURCE_MODELS:
        expected = ", ".join(f"'{k}'" for k in SOURCE_KINDS[:-1]) + f" or '{SOURCE_KINDS[-1]}'"
        detail = (InitErrorDetails(type="missing", loc=("kind",), input=data) if kind is None
                  else InitErrorDetails(type="literal_error", loc=("kind",), input=kind,
                                        ctx={"expected": expected}))
        raise ValidationError.from_exception_data("SourceConfig", [detail])
    own = SOURCE_MODELS[kind].model_fields
    misplaced = []
    for name in data:
        if name in own:
            continue
        owners = [k for k, model in SOURCE_MODELS.items() if name in model.model_fields]
        if owners:
            which = "kinds" if len(owners) > 1 else "kind"
            misplaced.append(InitErrorDetails(
                type=PydanticCustomError(
                    "wrong_kind", f"a field of {which} {_one_of(owners)} only (this source is"
                    f' kind "{kind}")'),
                loc=(name,), input=data[name]))
    if misplaced:
        raise ValidationError.from_exception_data("SourceConfig", misplaced)
    return data


#: One ``[[sources]]`` table: the model of its kind. pydantic reports a field's errors
#: under the kind (``sources.0.feed.id_path``); the config's messages leave it out.
SourceConfig = Annotated[
    FeedSource | ListingSource | DirectorySource | BucketSource | WatchSource
    | TelegramSource,
    BeforeValidator(_prepare),
    Discriminator("kind"),
]


@functools.cache
def _adapter() -> TypeAdapter[SourceConfig]:
    from pydantic import TypeAdapter

    return TypeAdapter(SourceConfig)


def source_config(**fields: Any) -> SourceConfig:
    """One source from its fields, as a ``[[sources]]`` table would give them."""
    return _adapter().validate_python(fields)
