"""Prometheus metrics of the daemon (prometheus-client, own registry).

Two kinds: counters the daemon increments as things happen (crawls, documents,
alert deliveries), and gauges read from the state store at scrape time
(stored hits by severity, outbox and spool depth, last success per source),
so they are right even for work done before this daemon started.
No label ever carries an identifier: labels are source names, outcomes,
severities and outbox states.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from leaksentry.config import StateConfig
from leaksentry.errors import StoreError
from leaksentry.store import Store
from leaksentry.store.engine import Connection, db_errors
from leaksentry.store.outbox import outbox_counts
from leaksentry.store.unrecorded import deferred_count
from pipelines.sinks.spool import spool_depth

if TYPE_CHECKING:
    from pipelines.alerts.worker import DeliveryReport
    from pipelines.sinks.spool import DrainReport

log = logging.getLogger("leaksentry.scheduler.metrics")


class DaemonMetrics:
    def __init__(self, state: StateConfig | Path | str,
                 running: Callable[[], list[str]] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.crawls = Counter("leaksentry_crawls", "Crawls finished, by source and outcome",
                              ["source", "outcome"], registry=r)
        self.documents = Counter("leaksentry_documents_scanned",
                                 "Documents fetched and scanned, by source", ["source"],
                                 registry=r)
        self.crawl_hits = Counter("leaksentry_crawl_hits", "Hits found by crawls, by source",
                                  ["source"], registry=r)
        self.deliveries = Counter("leaksentry_alert_deliveries",
                                  "Alert delivery attempts, by result (delivered, failed, dead)",
                                  ["result"], registry=r)
        self.spool_sent = Counter("leaksentry_spool_sent",
                                  "Spooled documents sent to Elasticsearch, by result"
                                  " (delivered, duplicates, rejected, retry_later)",
                                  ["result"], registry=r)
        self.spool_unreachable = Counter("leaksentry_spool_unreachable",
                                         "Spool drains that found Elasticsearch unreachable",
                                         registry=r)
        self.purged = Counter("leaksentry_retention_purged",
                              "Rows purged by the retention job", registry=r)
        self.skipped = Counter("leaksentry_runs_skipped",
                               "Scheduled runs not started, by job and reason"
                               " (still_running, missed)", ["job", "reason"], registry=r)
        self.job_errors = Counter("leaksentry_job_errors",
                                  "Periodic jobs that raised, by job", ["job"], registry=r)
        self.reloads = Counter("leaksentry_config_reloads",
                               "Config reloads on SIGHUP, by result (ok, invalid)", ["result"],
                               registry=r)
        self.started = Gauge("leaksentry_daemon_start_time_seconds",
                             "When the daemon started (Unix time)", registry=r)
        self.started.set_to_current_time()
        r.register(StoreCollector(state, running))

    def record_crawl(self, source: str, outcome: str, fetched: int, hits: int) -> None:
        self.crawls.labels(source, outcome).inc()
        self.documents.labels(source).inc(fetched)
        self.crawl_hits.labels(source).inc(hits)

    def record_delivery(self, report: DeliveryReport) -> None:
        for result, n in (("delivered", report.delivered), ("failed", report.failed),
                          ("dead", report.dead)):
            if n:
                self.deliveries.labels(result).inc(n)

    def record_drain(self, report: DrainReport) -> None:
        for result, n in (("delivered", report.delivered), ("duplicates", report.duplicates),
                          ("rejected", report.rejected), ("retry_later", report.retry_later)):
            if n:
                self.spool_sent.labels(result).inc(n)
        if report.unreachable:
            self.spool_unreachable.inc()


class StoreCollector(Collector):
    """Gauges read from the state store on each scrape (a short read-only connection)."""

    def __init__(self, state: StateConfig | Path | str,
                 running: Callable[[], list[str]] | None = None) -> None:
        self.state = state
        self.running = running

    def describe(self) -> list[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.running is not None:
            g = GaugeMetricFamily("leaksentry_crawls_running", "Crawls running now",
                                  labels=["source"])
            for name in self.running():
                g.add_metric([name], 1)
            yield g
        store = Store(self.state, readonly=True)
        unusable: tuple[type[Exception], ...] = (StoreError, *db_errors())
        yield GaugeMetricFamily("leaksentry_runs_unrecorded",
                                "Runs kept on this host until the state store is reachable",
                                value=deferred_count(store.state_dir))
        try:
            conn = store.conn
            conn.execute("SELECT 1").fetchone()
        except unusable as exc:
            log.warning("metrics: cannot open state store %s: %s", store.where, exc)
            yield GaugeMetricFamily("leaksentry_state_store_up",
                                    "1 when the state store answered this scrape", value=0)
            store.close()
            return
        yield GaugeMetricFamily("leaksentry_state_store_up",
                                "1 when the state store answered this scrape", value=1)
        try:
            yield from self._safe(self._hits, conn)
            yield from self._safe(self._outbox, conn)
            yield from self._safe(self._spool, conn)
            yield from self._safe(self._health, conn)
        finally:
            store.close()

    @staticmethod
    def _safe(fn: Callable[[Connection], list[GaugeMetricFamily]],
              conn: Connection) -> list[GaugeMetricFamily]:
        try:
            return fn(conn)
        except db_errors() as exc:  # e.g. a table not migrated yet
            log.debug("metrics: %s unavailable: %s", fn.__name__, exc)
            return []

    @staticmethod
    def _hits(conn: Connection) -> list[GaugeMetricFamily]:
        g = GaugeMetricFamily("leaksentry_hits", "Hits in the local store, by severity",
                              labels=["severity"])
        for row in conn.execute("SELECT severity, count(*) FROM hits GROUP BY severity"):
            g.add_metric([str(row[0])], row[1])
        return [g]

    @staticmethod
    def _outbox(conn: Connection) -> list[GaugeMetricFamily]:
        g = GaugeMetricFamily("leaksentry_outbox_depth", "Alerts in the outbox, by state",
                              labels=["state"])
        for state, n in sorted(outbox_counts(conn).items()):
            g.add_metric([state], n)
        return [g]

    @staticmethod
    def _spool(conn: Connection) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily("leaksentry_spool_depth",
                                  "Documents waiting in the Elasticsearch spool",
                                  value=spool_depth(conn))]

    @staticmethod
    def _health(conn: Connection) -> list[GaugeMetricFamily]:
        last = GaugeMetricFamily("leaksentry_source_last_success_timestamp_seconds",
                                 "Last successful crawl per source (Unix time)",
                                 labels=["source"])
        healthy = GaugeMetricFamily("leaksentry_source_healthy",
                                    "1 when the source is healthy, 0 when not",
                                    labels=["source"])
        for row in conn.execute("SELECT source, healthy, last_success FROM source_health"):
            healthy.add_metric([row["source"]], int(row["healthy"]))
            if row["last_success"]:
                ts = datetime.fromisoformat(row["last_success"]).timestamp()
                last.add_metric([row["source"]], ts)
        return [last, healthy]
