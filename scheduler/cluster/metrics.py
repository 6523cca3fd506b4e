"""Prometheus gauges of the cluster, read from Redis at scrape time (the daemon's
/metrics): queue depth and lag, workers alive, jobs running and the oldest one's age."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from scheduler.cluster.state import cluster_status

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from leaksentry.config.cluster import ClusterConfig

log = logging.getLogger("leaksentry.scheduler.metrics")


class ClusterCollector(Collector):
    def __init__(self, cluster: ClusterConfig) -> None:
        self.cluster = cluster

    def describe(self) -> list[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        st = cluster_status(self.cluster)
        yield GaugeMetricFamily("leaksentry_cluster_broker_up",
                                "1 when the cluster's Redis answers", value=int(st.reachable))
        if not st.reachable:
            log.warning("metrics: cluster broker unreachable: %s", st.error)
            return
        depth = GaugeMetricFamily("leaksentry_queue_depth", "Jobs waiting, by queue",
                                  labels=["queue"])
        lag = GaugeMetricFamily("leaksentry_queue_lag_seconds",
                                "Age of the oldest waiting job, by queue", labels=["queue"])
        for q in st.queues:
            depth.add_metric([q.name], q.depth)
            lag.add_metric([q.name], q.lag_seconds or 0.0)
        workers = GaugeMetricFamily("leaksentry_workers", "Workers alive, by queue",
                                    labels=["queue"])
        for q in st.queues:
            workers.add_metric([q.name], sum(1 for w in st.workers if q.name in w.queues))
        running = GaugeMetricFamily("leaksentry_jobs_running", "Jobs running on the workers",
                                    value=sum(len(w.running) for w in st.workers))
        age = GaugeMetricFamily("leaksentry_job_age_seconds",
                                "How long the oldest running job has been running",
                                value=st.oldest_job_age or 0.0)
        yield from (depth, lag, workers, running, age)


def register(registry: CollectorRegistry, cluster: ClusterConfig) -> None:
    registry.register(ClusterCollector(cluster))
