"""The run record of a crawl, written when its spider closes (an extension).

The counters are ``crawler.stats`` (:mod:`crawler.runstats`); the outcome follows from
the close reason and the first source-level failure. A shard or a part of a cluster run
(``LEAKSENTRY_RECORD_RUN = False``) leaves the record to its parent, which gets
:attr:`RunRecorder.summary` from the runner. A full disk spends the store's reserve on
the record; a record that still cannot be written is :attr:`RunRecorder.unrecorded`
(the runner exits 2 with it).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from scrapy import signals
from scrapy.crawler import Crawler

from crawler import runstats
from crawler.state import StateStore
from leaksentry.store.failures import storage_error, store_failure
from leaksentry.store.runs import record_run
from pipelines.model import RunSummary

log = logging.getLogger(__name__)


class RunRecorder:
    def __init__(self, crawler: Crawler) -> None:
        s = crawler.settings
        self.crawler = crawler
        self.source: str = s.get("LEAKSENTRY_SOURCE")
        self.timeout = s.getfloat("CLOSESPIDER_TIMEOUT")
        self.unhealthy_after = s.getint("LEAKSENTRY_UNHEALTHY_AFTER")
        self.records = s.getbool("LEAKSENTRY_RECORD_RUN")
        self.started_at = datetime.now(UTC)
        self.summary: RunSummary | None = None
        #: set when even the run record could not be written
        self.unrecorded: str | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RunRecorder:
        ext = cls(crawler)
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        return ext

    def spider_opened(self) -> None:
        self.started_at = datetime.now(UTC)
        # connected now, after every component built with the engine: the run is recorded
        # after their spider_closed handlers (the seen store's last write-behind flush)
        self.crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    def outcome(self, reason: str) -> str:
        stats = self.crawler.stats
        if stats.get_value(runstats.ERROR) is not None:
            return "error"
        if reason == "finished":
            return "ok"
        if reason == "closespider_timeout":
            stats.set_value(runstats.ERROR, f"crawl stopped after its timeout ({self.timeout:g}s)")
            return "timeout"
        if reason == "shutdown":
            stats.set_value(runstats.ERROR, "crawl interrupted")
            return "killed"
        stats.set_value(runstats.ERROR, f"crawl closed: {reason}")
        return "error"

    def spider_closed(self, reason: str) -> None:
        outcome = self.outcome(reason)
        s = self.summary = runstats.summary(self.crawler.stats.get_stats(), self.source,
                                            self.started_at, datetime.now(UTC), outcome)
        counts = (outcome, s.discovered, s.fetched, s.new, s.hits, s.errors)
        if not self.records:
            # the parent (shards) or the cluster run (parts) records the merged run
            log.info("part done: %s discovered=%d fetched=%d new=%d hits=%d errors=%d",
                     *counts)
            return
        state = StateStore.of(self.crawler)
        try:
            self._record(state)
        except Exception as exc:
            if not storage_error(exc):
                raise
            # a full disk: spend the store's reserve on the run record
            try:
                if not state.store.release_reserve():
                    raise
                self._record(state)
            except Exception as again:
                if not storage_error(again):
                    raise
            else:
                log.info("run recorded (reserve space used): %s", outcome)
                return
            # the runner reports it (one line, exit 2): no run record to read back
            state.failure = state.failure or str(store_failure(state.path, exc))
            self.unrecorded = str(store_failure(state.path, exc))
            log.error("run not recorded: %s", self.unrecorded)
            return
        log.info("run recorded: %s discovered=%d fetched=%d new=%d hits=%d errors=%d", *counts)

    def _record(self, state: StateStore) -> None:
        assert self.summary is not None
        with state.store.transaction() as tx:
            record_run(tx, self.summary, unhealthy_after=self.unhealthy_after)
