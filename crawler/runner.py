"""Run one crawl of one source in this process and return its :class:`RunSummary`.

The Twisted reactor cannot be restarted, so a process runs exactly one crawl;
``leaksentry crawl --all`` and the daemon start a subprocess per crawl. A
source with ``processes = N`` is crawled by N forked shards
(:mod:`crawler.shard`), recorded as one run. The
run is always recorded in the state store before this returns — by
:class:`crawler.runs.RunRecorder` when the spider closes, or here when the crawl could
not even start — and a
watchdog ends a crawl that outlives its timeout by more than a grace period
(recording a "timeout" run first), so a caller never waits forever.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from scrapy import signals
from scrapy.crawler import CrawlerProcess
from scrapy.settings import Settings as ScrapySettings
from scrapy.utils.misc import load_object

import crawler.settings as defaults
from crawler import runstats
from crawler.base import SourceSpider
from crawler.logformat import one_line
from crawler.runs import RunRecorder
from crawler.shard import Shard, run_sharded
from leaksentry.config import Settings
from leaksentry.config.sources import (
    BucketSource,
    DirectorySource,
    Sharded,
    SourceConfig,
)
from leaksentry.errors import StoreError
from leaksentry.redaction import install_log_redaction
from leaksentry.store.db import Store
from leaksentry.store.runs import record_run
from leaksentry.terminal import EscapeControlsFilter
from pipelines.model import RunSummary

_E = TypeVar("_E")

#: spider class per source kind
SPIDERS: dict[str, str] = {
    "feed": "crawler.spiders.feed.FeedSpider",
    "directory": "crawler.spiders.directory.DirectorySpider",
    "watch": "crawler.spiders.watch.WatchSpider",
    "listing": "crawler.spiders.listing.ListingSpider",
    "bucket": "crawler.spiders.bucket.BucketSpider",
    "telegram": "crawler.spiders.telegram.TelegramSpider",
}

WATCHDOG_GRACE = 30.0  # seconds past the crawl timeout before the process is ended
SHUTDOWN_GRACE = 10.0  # seconds a SIGTERM'd crawl may take to close before it is ended

PLAYWRIGHT_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync", "--no-first-run",
                   "--disable-dev-shm-usage"]


def scrapy_settings(source: SourceConfig, app: Settings,
                    shard: Shard | None = None, limit: bool = False, *,
                    part: bool = False) -> dict[str, Any]:
    """Scrapy settings for one crawl of ``source`` (on top of ``crawler.settings``).
    ``limit``: a cluster worker's crawl, whose politeness is held in Redis for all the
    processes of the source's run (crawler.middlewares.limiter). ``part``: a part of a
    cluster run (its run is recorded by the cluster run, as a shard's by its parent)."""
    s = app.crawler.effective(source)
    maxsize = int(s.max_download_size or 0)
    budget = int(s.max_items or 0)
    out: dict[str, Any] = {
        "LEAKSENTRY_SOURCE": source.name,
        "LEAKSENTRY_STATE": app.state,
        "LEAKSENTRY_APP_CONFIG": app,
        "LEAKSENTRY_MAX_ITEMS": shard.share(budget) if shard is not None else budget,
        "LEAKSENTRY_SHARD": shard.setting() if shard is not None else [],
        "LEAKSENTRY_RECORD_RUN": shard is None and not part,
        "LEAKSENTRY_UNHEALTHY_AFTER": s.unhealthy_after,
        "LEAKSENTRY_NOT_READY_DELAY": 60.0 if s.not_ready_delay is None
        else float(s.not_ready_delay),
        "LEAKSENTRY_HEADERS": dict(s.headers),
        "LEAKSENTRY_SOURCE_HOST": (urlsplit(s.all_urls[0]).hostname or "") if s.all_urls
        else "",
        "LEAKSENTRY_TOKEN_ENV": s.token_env or "",
        "LEAKSENTRY_TOKEN_HEADER": s.token_header,
        "LEAKSENTRY_TOKEN_FORMAT": s.token_format,
        "LEAKSENTRY_PROXY": s.proxy or "",
        "LEAKSENTRY_FILE_HOSTS": list(app.crawler.all_file_hosts),
        "LEAKSENTRY_NEVER_FETCH_HOSTS": list(app.crawler.never_fetch_hosts),
        "USER_AGENT": s.user_agent,
        "LOG_LEVEL": app.daemon.log_level,  # every record goes through the redaction filter
        "CONCURRENT_REQUESTS": s.concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": s.concurrency,
        "DOWNLOAD_DELAY": s.delay,
        "AUTOTHROTTLE_ENABLED": bool(s.autothrottle),
        "AUTOTHROTTLE_START_DELAY": max(float(s.delay or 0), 1.0),
        "AUTOTHROTTLE_TARGET_CONCURRENCY": float(s.concurrency or 1),
        "RETRY_TIMES": s.retry_max,
        "LEAKSENTRY_BACKOFF_BASE": s.backoff_base,
        "LEAKSENTRY_BACKOFF_CAP": s.backoff_cap,
        "ROBOTSTXT_OBEY": bool(s.obey_robots),
        "DOWNLOAD_MAXSIZE": maxsize,
        "DOWNLOAD_WARNSIZE": maxsize // 2,
        "DOWNLOAD_TIMEOUT": s.download_timeout,
        "REDIRECT_MAX_TIMES": s.max_redirects,
        "REDIRECT_ENABLED": (s.max_redirects or 0) > 0,
        "CLOSESPIDER_TIMEOUT": s.timeout,
        "LEAKSENTRY_ALLOW_PRIVATE": s.allow_private,
        "LEAKSENTRY_PRIVATE_HOSTS": list(s.private_hosts),
        "LEAKSENTRY_GUARD_TRUSTED_HOSTS": [urlsplit(s.proxy).hostname] if s.proxy else [],
        "LEAKSENTRY_RESOLVE": dict(app.crawler.resolve),
        # the spider class is passed directly: do not import every spider module at start
        "SPIDER_MODULES": [],
        # items of one response handled at once: Scrapy starts this many asyncio tasks per
        # response (most responses carry one document); more than the scan workers
        # would only wait for a free worker (measured: 16 -> 2 is ~8% more docs/s)
        "CONCURRENT_ITEMS": max(1, app.crawler.scan_workers),
    }
    if limit and app.cluster.enabled:
        out["LEAKSENTRY_LIMITER"] = {
            "url": app.cluster.broker_url(), "concurrency": s.concurrency, "delay": s.delay,
            "key": f"{app.cluster.key_prefix}:limit:{source.name}",
            # a lease outlives the longest download: a process that dies frees it then
            "lease": float(s.download_timeout or 60) + 30}
    if shard is not None:  # the shards log to one stream: say which line is whose
        out["LOG_FORMAT"] = f"%(asctime)s [%(name)s] shard {shard} %(levelname)s: %(message)s"
    if s.rendered:
        out["DOWNLOAD_HANDLERS"] = {
            "http": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler",
            "https": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler",
        }
        launch: dict[str, Any] = {"executable_path": app.crawler.chromium_path,
                                  "args": list(PLAYWRIGHT_ARGS)}
        # the source's proxy is chained by the guard proxy (crawler.guard_proxy)
        out["PLAYWRIGHT_LAUNCH_OPTIONS"] = launch
        out["PLAYWRIGHT_BROWSER_TYPE"] = "chromium"
        out["PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT"] = float(s.download_timeout or 60) * 1000
        out["PLAYWRIGHT_MAX_PAGES_PER_CONTEXT"] = s.concurrency
    return out


def _escape_log_controls() -> None:
    """Scrapy's log handler (installed by CrawlerProcess) prints URLs, titles and server
    messages: no raw control character reaches the terminal through it."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, EscapeControlsFilter) for f in handler.filters):
            handler.addFilter(EscapeControlsFilter())


def spider_class(kind: str) -> type[SourceSpider]:
    cls: type[SourceSpider] = load_object(SPIDERS[kind])
    return cls


#: set in a shard's process: its run goes to the parent, which records the merged run
_report: Callable[[RunSummary], None] | None = None


def _record(app: Settings, summary: RunSummary, unhealthy_after: int) -> None:
    if _report is not None:
        _report(summary)
        return
    store = Store(app.state)
    try:
        with store.transaction() as tx:
            record_run(tx, summary, unhealthy_after=unhealthy_after)
    finally:
        store.close()


def _give_up(app: Settings, source: SourceConfig, started: datetime, crawler: Any,
             outcome: str, error: str) -> None:
    """Record what the crawl did so far (its stats) and end the process now (exit 1)."""
    stats = getattr(crawler, "_stats", None)
    counted = dict(stats.get_stats()) if stats is not None else {}
    counted[runstats.ERROR] = error
    summary = runstats.summary(counted, source.name, started, datetime.now(UTC), outcome)
    _record(app, summary, source.unhealthy_after)
    os._exit(1)


def _watchdog(app: Settings, source: SourceConfig, started: datetime,
              done: threading.Event, holder: dict[str, Any]) -> None:
    timeout = source.timeout + WATCHDOG_GRACE
    if done.wait(timeout):
        return
    _give_up(app, source, started, holder.get("crawler"), "timeout",
             f"crawl did not stop within its timeout ({timeout:g}s); process ended")


def _on_shutdown_signal(app: Settings, source: SourceConfig, started: datetime,
                        done: threading.Event, holder: dict[str, Any]) -> None:
    """Chain onto Scrapy's SIGTERM/SIGINT handler: Scrapy stops gracefully, but waits for
    downloads in flight; if that takes longer than SHUTDOWN_GRACE the run is recorded as
    "killed" with its counters so far and the process ends."""

    def chain(signum: int) -> None:
        previous = signal.getsignal(signum)

        def handler(sig: int, frame: Any) -> None:
            def later() -> None:
                if not done.wait(SHUTDOWN_GRACE):
                    _give_up(app, source, started, holder.get("crawler"), "killed",
                             f"stopped by signal {sig}; downloads in flight abandoned")

            threading.Thread(target=later, daemon=True, name="crawl-shutdown").start()
            if callable(previous):
                previous(sig, frame)

        signal.signal(signum, handler)

    for signum in (signal.SIGTERM, signal.SIGINT):
        chain(signum)


def run_crawl(app: Settings, source_name: str, shard: Shard | None = None, *,
              items: list[dict[str, Any]] | None = None, dispatch: Any = None,
              report: Callable[[RunSummary], None] | None = None,
              limit: bool = False, overrides: dict[str, str] | None = None) -> RunSummary:
    """One crawl of the named source; the returned summary is already in the store.

    A state store that cannot be opened (damaged, no space) raises StoreError before
    anything is fetched; one whose run record cannot be written raises it at the end.

    A part of a cluster run (scheduler.cluster.fanout) passes ``report``, which gets
    the summary instead of the store (once, also from the watchdog or a signal), and
    either ``dispatch`` (the listing: item requests go to it instead of being
    fetched) or ``items`` (a batch: fetch only these). ``limit``: see scrapy_settings.
    ``overrides``: Scrapy settings for this crawl, applied last (``crawl -s NAME=VALUE``).
    """
    source = app.crawler.effective(app.source(source_name))
    if shard is None:  # create and migrate it (WAL mode) before shards open it all at once;
        store = Store(app.state)  # PostgreSQL: refuse a schema behind this version now
        store.check_schema()
        store.close()  # the connection is closed before fork, never inherited
    if report is not None:
        global _report
        _report = _once(report)
        summary = _run_one(app, source, None, items=items, dispatch=dispatch, limit=limit,
                           overrides=overrides)
        _report(summary)
        return summary
    if shard is None and isinstance(source, Sharded) and source.processes > 1:
        return _run_shards(app, source, overrides)
    return _run_one(app, source, shard, limit=limit, overrides=overrides)


def _once(report: Callable[[RunSummary], None]) -> Callable[[RunSummary], None]:
    done = threading.Lock()

    def once(summary: RunSummary) -> None:
        if done.acquire(blocking=False):
            report(summary)

    return once


def _run_shards(app: Settings, source: DirectorySource | BucketSource,
                overrides: dict[str, str] | None) -> RunSummary:
    # [crawler] scan_workers is the crawl's total: the shards share it (at least one each).
    # More scan threads per shard than that only contend for its GIL and the store's
    # write lock (bench_crawl: 2 shards x 1 worker ~385 docs/s, x 2 workers ~300)
    n = source.processes
    per_shard = max(1, app.crawler.scan_workers // n)
    shard_app = app.model_copy(update={
        "crawler": app.crawler.model_copy(update={"scan_workers": per_shard})})
    # the source's politeness holds for the crawl as a whole: its requests in flight are
    # split between the shards and each shard waits N times the delay between requests
    source = source.model_copy(update={
        "concurrency": max(1, -(-int(source.concurrency or 1) // n)),
        "delay": float(source.delay or 0) * n})

    def child(shard: Shard, report: Callable[[RunSummary], None]) -> None:
        global _report
        _report = report
        # a crawl that could not start has reported already (through _record); the
        # parent reads the last report, so a second, identical one is harmless
        report(_run_one(shard_app, source, shard, overrides=overrides))

    # each shard has its own watchdog (timeout + grace, then it reports and exits);
    # the parent waits a little longer than that before killing what is left
    timeout = source.timeout + WATCHDOG_GRACE + SHUTDOWN_GRACE + 15
    unhealthy_after = source.unhealthy_after
    return run_sharded(source.name, source.processes, child, timeout,
                       lambda s: _record(app, s, unhealthy_after))


def _run_one(app: Settings, source: SourceConfig, shard: Shard | None, *,
             items: list[dict[str, Any]] | None = None, dispatch: Any = None,
             limit: bool = False, overrides: dict[str, str] | None = None) -> RunSummary:
    started = datetime.now(UTC)
    settings = ScrapySettings()
    settings.setmodule(defaults, priority="project")
    part = items is not None or dispatch is not None
    settings.update(scrapy_settings(source, app, shard, limit, part=part), priority="cmdline")
    settings.update(overrides or {}, priority="cmdline")

    done = threading.Event()
    holder: dict[str, Any] = {}
    threading.Thread(target=_watchdog, args=(app, source, started, done, holder), daemon=True,
                     name="crawl-watchdog").start()
    error: str | None = None
    crawler = None
    try:
        process = CrawlerProcess(settings)
        install_log_redaction()  # Scrapy's root handler: every record through the policy
        _escape_log_controls()
        crawler = holder["crawler"] = process.create_crawler(spider_class(source.kind))
        # (the run is recorded by crawler.runs.RunRecorder when the spider closes; the
        # watchdog's wait ends with the engine)
        crawler.signals.connect(lambda *a, **kw: done.set(), signal=signals.engine_stopped)
        deferred = process.crawl(crawler, source=source, items=items, dispatch=dispatch)
        from twisted.internet import reactor  # installed by crawl(): import it only now

        # after Scrapy has installed its own shutdown handlers ("after startup", set up
        # in process.start()): callLater(0) from a startup trigger runs after all of them
        reactor.callWhenRunning(reactor.callLater, 0, _on_shutdown_signal, app, source,
                                started, done, holder)
        failures: list[str] = []
        deferred.addErrback(lambda f: failures.append(
            f"{type(f.value).__name__}: {one_line(f.value)}"))
        process.start()
        if failures:
            error = f"crawl failed: {failures[0]}"
    except Exception as exc:  # the crawl could not be set up: still recorded
        error = f"crawl failed: {type(exc).__name__}: {one_line(exc)}"
    finally:
        done.set()
    recorder = _extension(crawler, RunRecorder)
    if recorder is not None and recorder.unrecorded:
        raise StoreError(recorder.unrecorded)  # even the run record could not be written
    summary = recorder.summary if recorder is not None else None
    if summary is None:
        summary = RunSummary(source=source.name, started_at=started,
                             finished_at=datetime.now(UTC), outcome="error",
                             error=error or "crawl ended without a summary")
        _record(app, summary, source.unhealthy_after)
    return summary


def _extension(crawler: Any, cls: type[_E]) -> _E | None:
    """The crawler's extension of ``cls``, if the crawl got as far as building them."""
    if crawler is None or getattr(crawler, "_extensions", None) is None:
        return None
    ext: _E | None = crawler.get_extension(cls)
    return ext
