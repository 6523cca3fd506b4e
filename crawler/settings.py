"""Scrapy settings shared by every crawl. Per-source values (politeness, limits,
the network guard) are layered on top by :func:`crawler.runner.scrapy_settings`."""

from scrapy.settings.default_settings import EXTENSIONS_BASE as _SCRAPY_EXTENSIONS

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
LOG_FORMATTER = "crawler.base.SafeLogFormatter"
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
    "crawler.middlewares.stats.StatusCounterMiddleware": 950,
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
    "scrapy.downloadermiddlewares.stats.DownloaderStats": None,
}
SPIDER_MIDDLEWARES = {
    "scrapy.spidermiddlewares.referer.RefererMiddleware": None,
    "scrapy.spidermiddlewares.urllength.UrlLengthMiddleware": None,
    "scrapy.spidermiddlewares.depth.DepthMiddleware": None,
}
ITEM_PIPELINES = {
    "crawler.pipelines.DocumentPipeline": 300,
}
# Scrapy's defaults without the telnet console and the RemoteControl extension (both
# off above): naming them in EXTENSIONS as None would still import them, and
# RemoteControl's module imports aiohttp, a fifth of a second of every crawl's start
EXTENSIONS_BASE = {k: v for k, v in _SCRAPY_EXTENSIONS.items()
                   if k.rsplit(".", 1)[-1] not in ("TelnetConsole", "RemoteControl")}
# items of one response processed in parallel (default 100 costs 100 asyncio tasks per
# response; one document per response here); the runner sets it to [crawler] scan_workers
CONCURRENT_ITEMS = 16
