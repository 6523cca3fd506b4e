"""The crawl's one connection to the state store (seen items, runs), as an extension.

Every component that reads or writes the store (the seen filter, the item pipeline,
the run recorder, the spiders' re-queues) takes it from here: one SQLite connection per
crawl process, opened on first use from ``LEAKSENTRY_STATE`` and closed when the
engine stops. A store that cannot be written (full disk, damaged file) stops the crawl
once, its run an error (:meth:`StateStore.failed`).
"""

from __future__ import annotations

from pathlib import Path

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.utils.defer import deferred_from_coro

from crawler.runstats import source_failed
from leaksentry.config import StateConfig
from leaksentry.store.db import Store
from leaksentry.store.failures import store_failure


class StateStore:
    def __init__(self, crawler: Crawler, target: StateConfig | str) -> None:
        self.crawler = crawler
        self.target = target
        #: what messages name: the SQLite file, or the PostgreSQL URL (never a password)
        self.path: Path | str = (target.url or target.db) if isinstance(target, StateConfig) \
            else target
        self._store: Store | None = None
        #: set when the state store could not be written (the crawl stops, run "error")
        self.failure: str | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> StateStore:
        ext = cls(crawler, crawler.settings.get("LEAKSENTRY_STATE"))
        crawler.signals.connect(ext.close, signal=signals.engine_stopped)
        return ext

    @staticmethod
    def of(crawler: Crawler) -> StateStore:
        ext = crawler.get_extension(StateStore)
        assert ext is not None, "crawler.state.StateStore is not in EXTENSIONS"
        return ext

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.target)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def failed(self, exc: BaseException) -> None:
        """The store cannot be written: nothing more can be recorded, so the crawl stops
        and its run is an error."""
        if self.failure is not None:
            return
        self.failure = str(store_failure(self.path, exc))
        source_failed(self.crawler, self.failure)
        engine = self.crawler._engine
        if engine is not None and engine.spider is not None:
            deferred_from_coro(engine.close_spider_async(reason="store_failed"))
