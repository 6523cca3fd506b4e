"""Scrapy settings shared by every crawl, and every leaksentry setting with its default.

Per-source values (politeness, limits, the network guard, the source's identity) are
layered on top by :func:`crawler.runner.scrapy_settings`; ``leaksentry crawl -s NAME=VALUE``
sets any of them for one crawl (as ``scrapy crawl -s`` does), last.
"""

from scrapy.settings.default_settings import EXTENSIONS_BASE as _SCRAPY_EXTENSIONS

from leaksentry.config.sources import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_CAP,
    DEFAULT_FILE_HOSTS,
    DEFAULT_NEVER_FETCH_HOSTS,
    DEFAULT_UNHEALTHY_AFTER,
)

BOT_NAME = "leaksentry"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"

TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
ROBOTSTXT_OBEY = True  # per source: obey_robots (default true for HTML kinds)
COOKIES_ENABLED = False
TELNETCONSOLE_ENABLED = False
# Scrapy 2.19's RemoteControl extension runs Python code sent to a local HTTP port:
# a crawler reading hostile sites must not have one
REMOTE_CONTROL_ENABLED = False
LOG_LEVEL = "INFO"
# items carry document content: never print them
LOG_FORMATTER = "crawler.logformat.SafeLogFormatter"
LOGSTATS_INTERVAL = 0

REQUEST_FINGERPRINTER_IMPLEMENTATION = "2.7"
TWISTED_DNS_RESOLVER = "crawler.middlewares.guard.GuardedResolver"
DNS_TIMEOUT = 15

# only HTTP(S): a hostile listing or redirect must not reach file://, ftp://, s3:// or data:
DOWNLOAD_HANDLERS_BASE = {
    "http": "scrapy.core.downloader.handlers.http11.HTTP11DownloadHandler",
    "https": "scrapy.core.downloader.handlers.http11.HTTP11DownloadHandler",
}

DOWNLOAD_TIMEOUT = 60
DOWNLOAD_MAXSIZE = 50 * 1024 * 1024  # applies to decompressed bodies too (HttpCompression)
DOWNLOAD_WARNSIZE = 10 * 1024 * 1024
DOWNLOAD_FAIL_ON_DATALOSS = True
REDIRECT_MAX_TIMES = 5
METAREFRESH_ENABLED = False

RETRY_ENABLED = True
RETRY_TIMES = 3

DOWNLOADER_MIDDLEWARES = {
    "crawler.middlewares.guard.NetworkGuardMiddleware": 60,
    "crawler.middlewares.credentials.CredentialOriginMiddleware": 70,
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "crawler.middlewares.backoff.BackoffRetryMiddleware": 550,
    # source headers, token and proxy on the spider's own requests (before the origin check)
    "crawler.middlewares.credentials.SourceHeadersMiddleware": 65,
    # no download outlives the crawl's deadline (after DownloadTimeoutMiddleware, 350)
    "crawler.middlewares.deadline.DeadlineMiddleware": 360,
    # the same at the same place, minus a warning per crawl about RefererMiddleware
    # (disabled below on purpose: leak sites learn nothing about where links were found)
    "scrapy.downloadermiddlewares.redirect.RedirectMiddleware": None,
    "crawler.middlewares.redirect.NoRefererRedirectMiddleware": 600,
    # cluster runs only (LEAKSENTRY_LIMITER): the source's politeness across workers;
    # last before the download, so a lease covers the download alone
    "crawler.middlewares.limiter.ClusterLimiterMiddleware": 990,
    # not needed by any source kind; each costs a little per request
    "scrapy.downloadermiddlewares.offsite.OffsiteMiddleware": None,
    "scrapy.downloadermiddlewares.httpauth.HttpAuthMiddleware": None,
    # DownloaderStats stays (850): every response's status, retried and redirected ones
    # too, is counted there (downloader/response_status_count/*) for the run's statuses
}
SPIDER_MIDDLEWARES = {
    "scrapy.spidermiddlewares.referer.RefererMiddleware": None,
    "scrapy.spidermiddlewares.urllength.UrlLengthMiddleware": None,
    "scrapy.spidermiddlewares.depth.DepthMiddleware": None,
    # which listed items this run fetches, in this order: the seen store (and shards),
    # the run's max_items, a cluster run's batches
    "crawler.middlewares.seen.SeenFilterMiddleware": 700,
    "crawler.middlewares.budget.ItemBudgetMiddleware": 690,
    "crawler.middlewares.dispatch.ClusterDispatchMiddleware": 680,
}
ITEM_PIPELINES = {
    "crawler.pipelines.DocumentPipeline": 300,
}
# Scrapy's defaults without the telnet console and the RemoteControl extension (both
# off above): naming them in EXTENSIONS as None would still import them, and
# RemoteControl's module imports aiohttp, a fifth of a second of every crawl's start
EXTENSIONS_BASE = {k: v for k, v in _SCRAPY_EXTENSIONS.items()
                   if k.rsplit(".", 1)[-1] not in ("TelnetConsole", "RemoteControl")}
EXTENSIONS = {
    "crawler.state.StateStore": 100,  # the state store, opened once per crawl
    "crawler.runs.RunRecorder": 200,  # the run, from crawler.stats, when the spider closes
    "crawler.failures.CallbackErrors": 300,  # callback and pipeline exceptions counted
}
# items of one response processed in parallel (default 100 costs 100 asyncio tasks per
# response; one document per response here); the runner sets it to [crawler] scan_workers
CONCURRENT_ITEMS = 16

# -- leaksentry's own settings (crawler.runner fills them from the config) ------------
#: the source being crawled: names its run and its rows in the seen store
LEAKSENTRY_SOURCE = ""
#: the state store of the seen items and the runs: the config's ``[state]``
#: (leaksentry.config.StateConfig: a SQLite file in its dir, or PostgreSQL), or a path
LEAKSENTRY_STATE = None
#: the validated leaksentry config (leaksentry.config.Settings): read by the scan stage
#: alone (ScanProcessor: matching, extract, sinks, alerts and evidence sections)
LEAKSENTRY_APP_CONFIG = None
#: what the item pipeline does with a document (a dotted path to a Processor class)
LEAKSENTRY_PROCESSOR = "crawler.pipelines.ScanProcessor"
#: DocLogProcessor's JSON Lines file (document metadata only; tests, bench baseline)
LEAKSENTRY_DOCLOG = ""
#: documents fetched per run at most (0: none); a shard's or batch's own share
LEAKSENTRY_MAX_ITEMS = 0
#: [INDEX, COUNT] (0-based) when the crawl is one shard of several (crawler.shard)
LEAKSENTRY_SHARD: list[int] = []
#: False for a shard or a cluster part: the parent (or the cluster run) records the run
LEAKSENTRY_RECORD_RUN = True
#: consecutive failed runs after which the source is unhealthy (the run record says)
LEAKSENTRY_UNHEALTHY_AFTER = DEFAULT_UNHEALTHY_AFTER
#: retries within a crawl: the first waits BASE seconds, doubling, none longer than CAP
LEAKSENTRY_BACKOFF_BASE = DEFAULT_BACKOFF_BASE
LEAKSENTRY_BACKOFF_CAP = DEFAULT_BACKOFF_CAP
#: seconds ahead a "not ready yet" item is re-queued
LEAKSENTRY_NOT_READY_DELAY = 60.0
#: the network guard (crawler.addresses.GuardPolicy, crawler.middlewares.guard)
LEAKSENTRY_ALLOW_PRIVATE = False
LEAKSENTRY_PRIVATE_HOSTS: list[str] = []
LEAKSENTRY_GUARD_TRUSTED_HOSTS: list[str] = []  # the configured proxy's host
LEAKSENTRY_RESOLVE: dict[str, list[str]] = {}  # pinned addresses ([crawler] resolve)
#: the source's request headers; credential-like ones go to its own host only
LEAKSENTRY_HEADERS: dict[str, str] = {}
LEAKSENTRY_SOURCE_HOST = ""  # the host of the source's first URL: its "own" host
LEAKSENTRY_TOKEN_ENV = ""  # environment variable (or secret reference) holding the token
LEAKSENTRY_TOKEN_HEADER = "Authorization"
LEAKSENTRY_TOKEN_FORMAT = "Bearer {token}"
LEAKSENTRY_PROXY = ""  # the source's proxy (http:// or socks5h://)
#: link expansion: hosts whose links are fetched, hosts never fetched (crawler.links)
LEAKSENTRY_FILE_HOSTS: list[str] = list(DEFAULT_FILE_HOSTS)
LEAKSENTRY_NEVER_FETCH_HOSTS: list[str] = list(DEFAULT_NEVER_FETCH_HOSTS)
#: cluster runs only: the source's politeness held in Redis across workers
#: (crawler.middlewares.limiter; a dict: url, concurrency, delay, key, lease)
LEAKSENTRY_LIMITER = None
