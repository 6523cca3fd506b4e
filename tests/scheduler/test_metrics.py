"""Metrics: counters from the daemon, gauges read from the state store at scrape time,
served on /metrics and parsed with prometheus-client's own parser; /healthz."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from leaksentry.store import Store
from leaksentry.store.runs import record_run
from pipelines.alerts.worker import DeliveryReport
from pipelines.model import RunSummary
from pipelines.sinks.spool import DrainReport
from scheduler.health_http import MetricsServer
from scheduler.metrics import DaemonMetrics


def samples(text: str) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


@pytest.fixture
def store(store_url):
    """On SQLite and on PostgreSQL: the gauges read either through the store."""
    return Store(store_url)


def test_counters_and_store_gauges(store, tmp_path):
    m = DaemonMetrics(store.path, running=lambda: ["busy"])
    before = samples(generate_latest(m.registry).decode())
    assert before[("leaksentry_crawls_running", (("source", "busy"),))] == 1
    assert before[("leaksentry_outbox_depth", (("state", "pending"),))] == 0
    assert before[("leaksentry_spool_depth", ())] == 0
    assert before[("leaksentry_state_store_up", ())] == 1
    assert before[("leaksentry_runs_unrecorded", ())] == 0
    assert not [k for k in before if k[0] == "leaksentry_crawls_total"]

    now = datetime.now(UTC)
    with store.transaction() as tx:
        record_run(tx, RunSummary("feed1", now - timedelta(seconds=3), now, "ok",
                                  discovered=4, fetched=4, hits=1))
    m.record_crawl("feed1", "ok", fetched=4, hits=1)
    m.record_crawl("feed1", "timeout", fetched=0, hits=0)
    m.record_delivery(DeliveryReport(delivered=2, failed=1, dead=0))
    m.record_drain(DrainReport(delivered=5, rejected=1, unreachable=False))
    after = samples(generate_latest(m.registry).decode())
    assert after[("leaksentry_crawls_total", (("outcome", "ok"), ("source", "feed1")))] == 1
    assert after[("leaksentry_crawls_total", (("outcome", "timeout"), ("source", "feed1")))] == 1
    assert after[("leaksentry_documents_scanned_total", (("source", "feed1"),))] == 4
    assert after[("leaksentry_alert_deliveries_total", (("result", "delivered"),))] == 2
    assert after[("leaksentry_alert_deliveries_total", (("result", "failed"),))] == 1
    assert after[("leaksentry_spool_sent_total", (("result", "delivered"),))] == 5
    assert after[("leaksentry_source_healthy", (("source", "feed1"),))] == 1
    ts = after[("leaksentry_source_last_success_timestamp_seconds", (("source", "feed1"),))]
    assert ts == pytest.approx(now.timestamp(), abs=1)


def test_hits_by_severity_from_the_store(store):
    """Rows written straight into the sinks' hits table (its schema, not its API:
    this is the metric's query under test)."""
    now = datetime.now(UTC).isoformat()
    with store.transaction() as tx:
        for i, sev in enumerate(["high", "critical", "critical"]):
            tx.execute("INSERT INTO documents(url, source, sha256, size, status, severity,"
                       " scanned_at, first_seen, last_seen) VALUES (?,?,?,?,?,?,?,?,?)",
                       (f"http://x/{i}", "s", f"{i:064x}", 1, "ok", sev, now, now, now))
            doc = tx.execute("SELECT max(id) FROM documents").fetchone()[0]
            tx.execute("INSERT INTO hits(document_id, url, source, sha256, size, status,"
                       " severity, severity_rank, records_key, first_seen, last_seen)"
                       " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                       (doc, f"http://x/{i}", "s", f"{i:064x}", 1, "ok", sev, 3, "k", now, now))
    m = DaemonMetrics(store.path)
    got = samples(generate_latest(m.registry).decode())
    assert got[("leaksentry_hits", (("severity", "critical"),))] == 2
    assert got[("leaksentry_hits", (("severity", "high"),))] == 1


def test_http_endpoint_metrics_healthz_and_404(store):
    m = DaemonMetrics(store.path)
    health = {"status": "ok", "pid": 1}
    srv = MetricsServer("127.0.0.1", 0, m.registry, lambda: health).start()
    base = f"http://127.0.0.1:{srv.port}"
    try:
        with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
            assert r.headers["Content-Type"].startswith("text/plain")
            assert ("leaksentry_daemon_start_time_seconds", ()) in samples(r.read().decode())
        with urllib.request.urlopen(base + "/healthz", timeout=10) as r:
            assert json.loads(r.read()) == health
        health["status"] = "stopping"
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(base + "/healthz", timeout=10)
        assert exc.value.code == 503
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(base + "/other", timeout=10)
        assert exc.value.code == 404
    finally:
        srv.stop()
