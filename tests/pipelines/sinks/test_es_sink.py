"""The Elasticsearch sink against a real Elasticsearch-API server (osmem-server).

The OpenSearch backend (opensearch-py) talks to osmem directly; the official
``elasticsearch`` client is exercised in test_es_backend.py through a proxy.
"""

from __future__ import annotations

import itertools
import json
from datetime import timedelta

import pytest

from leaksentry.config import Settings
from leaksentry.store import Store
from pipelines.flow import record_finding
from pipelines.sinks import setup, spool
from pipelines.sinks.client import connect
from pipelines.sinks.ecs import hit_id


def make_settings(url: str, tmp_path, prefix: str = "leaksentry", **es) -> Settings:
    return Settings.model_validate({
        "state": {"dir": str(tmp_path)},
        "elasticsearch": {"url": url, "backend": "opensearch", "index_prefix": prefix,
                          "initial_backoff": 0.05, **es},
    })


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state.db")
    yield s
    s.close()


def search(cluster, index: str, body: dict) -> dict:
    return cluster.request("POST", f"/{index}/_search", body)


def ids_in(cluster, index: str) -> list[str]:
    got = search(cluster, index, {"size": 10_000, "query": {"match_all": {}}})
    return [h["_id"] for h in got["hits"]["hits"]]


def test_setup_is_idempotent_and_reports_missing_ilm(osmem, tmp_path):
    cluster = connect(make_settings(osmem.url, tmp_path).elasticsearch)
    first = setup.setup(cluster)
    second = setup.setup(cluster)
    assert first.templates == ["leaksentry-hits", "leaksentry-documents"]
    assert len(first.indices_created) == 2 and second.indices_created == []
    assert first.retention == "none"
    assert any("ISM is not supported" in n for n in first.notes)
    aliases = cluster.request("GET", "/_alias/leaksentry-hits")
    assert list(aliases) == first.indices_created[:1]
    mapping = cluster.request("GET", "/leaksentry-hits/_mapping")
    (m,) = mapping.values()
    assert m["mappings"]["dynamic"] == "strict"
    report = setup.check(cluster)
    assert report.ok and report.version == osmem.version
    assert report.templates == {"leaksentry-hits": "ok", "leaksentry-documents": "ok"}


def test_index_resend_search_and_aggregate(osmem, tmp_path, store, sinkdata):
    settings = make_settings(osmem.url, tmp_path)
    cluster = connect(settings.elasticsearch)
    setup.setup(cluster)
    ps = sinkdata.people(150)
    findings = sinkdata.a_month_of_findings(ps, ["pastebin", "gists", "telegram"], 60)
    findings.append(sinkdata.clean_finding("https://pastebin.example/clean"))
    for f in findings:
        record_finding(store, f, settings)
    assert spool.spool_depth(store.conn) == 60 * 2 + 1
    report = spool.drain(store, settings)
    assert (report.delivered, report.duplicates, report.rejected, report.pending) == (121, 0, 0, 0)

    # the same batch again (a crash after the cluster took it): no duplicates
    with store.transaction() as tx:
        for f in findings[:60]:
            spool._enqueue(tx, "hits", sinkdata.BASE_TIME, hit_id(f),
                           {"@timestamp": "2026-11-20T08:00:00Z"})
    again = spool.drain(store, settings)
    assert again.duplicates == 60 and again.delivered == 0 and again.pending == 0
    hits = ids_in(cluster, "leaksentry-hits")
    assert len(hits) == len(set(hits)) == 60
    assert cluster.request("GET", "/leaksentry-documents/_count")["count"] == 61

    # search by severity, source and time through the read alias
    crit = search(cluster, "leaksentry-hits", {"size": 100, "query": {"term": {
        "leaksentry.severity": "critical"}}})["hits"]["hits"]
    expected = [f for f in findings[:60] if f.result.severity == "critical"]
    assert len(crit) == len(expected) > 0
    assert all(h["_source"]["event"]["severity"] == 4 for h in crit)
    gists = search(cluster, "leaksentry-hits", {"size": 100, "query": {"bool": {"filter": [
        {"term": {"event.provider": "gists"}},
        {"range": {"leaksentry.matched_records": {"gte": 20}}}]}}})["hits"]["hits"]
    assert {h["_source"]["leaksentry"]["source"] for h in gists} == {"gists"}
    assert len(gists) == sum(1 for f in findings[:60]
                             if f.source == "gists" and f.result.matched_records >= 20)
    since = (sinkdata.BASE_TIME - timedelta(days=3)).isoformat()
    recent = search(cluster, "leaksentry-hits", {"size": 100, "query": {"range": {
        "@timestamp": {"gte": since}}}})["hits"]["hits"]
    assert len(recent) == sum(1 for f in findings[:60] if f.fetched_at.isoformat() >= since)
    by_record = search(cluster, "leaksentry-hits", {"size": 100, "query": {"term": {
        "leaksentry.record_refs": "150"}}})["hits"]["hits"]
    assert len(by_record) == sum(1 for f in findings[:60] if "150" in f.result.record_refs)

    # aggregate by source, and the records total
    aggs = search(cluster, "leaksentry-hits", {"size": 0, "aggs": {
        "src": {"terms": {"field": "leaksentry.source"}},
        "per_day": {"date_histogram": {"field": "@timestamp", "calendar_interval": "day"}},
    }})["aggregations"]
    assert {b["key"]: b["doc_count"] for b in aggs["src"]["buckets"]} == {
        "pastebin": 20, "gists": 20, "telegram": 20}
    assert sum(b["doc_count"] for b in aggs["per_day"]["buckets"]) == 60


def test_server_stopped_mid_run_then_delivered_exactly_once(osmem, tmp_path, store, sinkdata):
    settings = make_settings(osmem.url, tmp_path, timeout=2)
    ps = sinkdata.people(60)
    findings = sinkdata.a_month_of_findings(ps, ["pastebin", "gists"], 40)
    cluster = connect(settings.elasticsearch)
    setup.setup(cluster)
    for f in findings[:10]:
        record_finding(store, f, settings)
    assert spool.drain(store, settings).delivered == 20

    osmem.stop()  # the cluster goes away mid-run
    for f in findings[10:]:
        record_finding(store, f, settings)
    down = spool.drain(store, settings)
    assert down.unreachable and down.error and down.delivered == 0
    assert down.pending == spool.spool_depth(store.conn) == 60

    osmem.restart()  # back (empty: osmem keeps data in memory)
    up = spool.drain(store, settings)
    assert up.error is None and up.delivered == 60 and up.pending == 0
    assert spool.drain(store, settings).attempted == 0
    hits = ids_in(cluster, "leaksentry-hits")
    # exactly the 30 spooled while down: nothing delivered before the stop was re-sent
    assert sorted(hits) == sorted(hit_id(f) for f in findings[10:])
    assert cluster.request("GET", "/leaksentry-documents/_count")["count"] == 30


def test_setup_after_an_upgrade_adds_new_fields_to_this_months_index(osmem, tmp_path,
                                                                      store, sinkdata):
    """The month's index made by an older template (no skipped/partial) takes documents
    with the new fields once `es setup` has run again (it aligns existing indices)."""
    from datetime import UTC, datetime

    from pipelines.sinks import templates
    from pipelines.sinks.ecs import month_index

    settings = make_settings(osmem.url, tmp_path)
    cluster = connect(settings.elasticsearch)
    old = templates.documents_mapping()
    for field in ("skipped", "partial"):
        del old["properties"]["leaksentry"]["properties"][field]
    index = month_index("leaksentry", "documents", sinkdata.BASE_TIME)
    cluster.request("PUT", f"/{index}", {"mappings": old,
                                         "aliases": {"leaksentry-documents": {}}})
    setup.setup(cluster, now=datetime(2026, 11, 20, tzinfo=UTC))
    f = sinkdata.hit_finding(sinkdata.people(3), url="https://a.example/x", leak_in_text=True)
    assert f.result.skipped
    record_finding(store, f, settings)
    report = spool.drain(store, settings)
    assert report.rejected == 0 and report.delivered == 2
    got = search(cluster, index, {"query": {"term": {
        "leaksentry.partial": True}}})
    assert got["hits"]["total"]["value"] == 1


def test_malformed_document_recorded_rest_indexed(osmem, tmp_path, store, sinkdata):
    settings = make_settings(osmem.url, tmp_path)
    setup.setup(connect(settings.elasticsearch))
    ps = sinkdata.people(20)
    findings = sinkdata.a_month_of_findings(ps, ["pastebin"], 9)
    for f in findings[:5]:
        record_finding(store, f, settings)
    with store.transaction() as tx:  # a document the strict mapping refuses
        spool._enqueue(tx, "hits", sinkdata.BASE_TIME, "bad-doc",
                       {"@timestamp": "2026-11-20T08:00:00Z",
                        "leaksentry": {"matched_records": "many",
                                       "source": ps[0].hkid}})
        spool._enqueue(tx, "hits", sinkdata.BASE_TIME, "stray-field",
                       {"@timestamp": "2026-11-20T08:00:00Z", "content": "raw paste"})
    for f in findings[5:]:
        record_finding(store, f, settings)
    report = spool.drain(store, settings)
    assert report.delivered == 18 and report.rejected == 2 and report.pending == 0
    assert spool.spool_rejected(store.conn) == 2
    rows = spool.rejected_items(store.conn)
    assert {r["doc_id"] for r in rows} == {"bad-doc", "stray-field"}
    assert all(r["last_error"] for r in rows)
    assert any("strict" in r["last_error"] for r in rows)
    # a second drain does not retry them forever
    assert spool.drain(store, settings).attempted == 0
    cluster = connect(settings.elasticsearch)
    assert cluster.request("GET", "/leaksentry-hits/_count")["count"] == 9
    for r in rows:
        assert ps[0].hkid not in (r["last_error"] or "")


def test_no_plaintext_identifier_in_any_indexed_field(osmem, tmp_path, store, sinkdata):
    """Planted leaks (with identifiers in the URL, file name and a snippet, as careless
    uploads have them): a search over every field of every document finds none."""
    settings = make_settings(osmem.url, tmp_path)
    cluster = connect(settings.elasticsearch)
    setup.setup(cluster)
    ps = sinkdata.people(30)
    for i in range(5):
        group = ps[i * 6:(i + 1) * 6]
        f = sinkdata.hit_finding(group, url=f"https://leak.example/{group[0].hkid}/{i}",
                                 leak_in_text=True)
        record_finding(store, f, settings)
    assert spool.drain(store, settings).delivered == 10
    forms = [f for f in sinkdata.planted_forms(ps) if len(f) >= 7]
    texts = {}
    for index in ("leaksentry-hits", "leaksentry-documents"):
        docs = search(cluster, index, {"size": 1000, "query": {"match_all": {}}})["hits"]["hits"]
        assert docs
        text = texts[index] = json.dumps([d["_source"] for d in docs], ensure_ascii=False)
        for form in forms:
            assert form not in text and form.lower() not in text.lower()
            # and the server's own search, across every field, finds nothing either
            q = {"query": {"query_string": {"query": f'"{form}"', "fields": ["*"],
                                            "lenient": True}}}
            assert search(cluster, index, q)["hits"]["total"]["value"] == 0
    # the same search does find what is there (masked forms, record refs)
    masked = f"{ps[0].hkid[:3]}****({ps[0].hkid[-1]})"
    assert masked in texts["leaksentry-hits"]
    q = {"query": {"query_string": {"query": "leaksentry.record_refs:1", "lenient": True}}}
    assert search(cluster, "leaksentry-hits", q)["hits"]["total"]["value"] == 1


def spool_five_hits(url: str, tmp_path, store, sinkdata) -> Settings:
    """Indices set up at ``url``; five hits (ten documents) recorded and spooled."""
    settings = make_settings(url, tmp_path)
    setup.setup(connect(settings.elasticsearch))
    for f in sinkdata.a_month_of_findings(sinkdata.people(10), ["pastebin"], 5):
        record_finding(store, f, settings)
    return settings


def fail_first_bulk(statuses: list[int], error: str, reason: str, answered: list[int]):
    """A CompatProxy interceptor: the first bulk request is answered by the proxy, each
    create item failed with the next of ``statuses`` (cycled); ``answered`` gets the item
    count. Later requests go to the server."""

    def intercept(method: str, path: str, body: bytes | None, headers: dict):
        if not path.startswith("/_bulk") or answered:
            return None
        lines = [ln for ln in (body or b"").split(b"\n") if ln.strip()]
        items = [{"create": {**json.loads(meta)["create"], "status": status,
                             "error": {"type": error, "reason": reason}}}
                 for meta, status in zip(lines[0::2], itertools.cycle(statuses))]
        answered.append(len(items))
        return 200, json.dumps({"took": 1, "errors": True, "items": items}).encode()

    return intercept


def test_bulk_items_answered_429_are_retried_with_backoff(osmem, tmp_path, store, sinkdata):
    """A proxy in front of the real server answers the first bulk request with 429 for
    every item (a cluster pushing back); the client's helper retries them after a
    backoff and every document lands once."""
    from fixtures_osmem import CompatProxy

    throttled: list[int] = []
    proxy = CompatProxy(osmem, intercept=fail_first_bulk(
        [429], "es_rejected_execution_exception", "queue full", throttled))
    try:
        settings = spool_five_hits(proxy.url, tmp_path, store, sinkdata)
        report = spool.drain(store, settings)
    finally:
        proxy.close()
    assert throttled == [10]
    assert report.delivered == 10 and report.retry_later == 0 and report.pending == 0
    assert osmem.request("GET", "/leaksentry-hits/_count")["count"] == 5


def test_bulk_items_answered_5xx_stay_pending_then_land(osmem, tmp_path, store, sinkdata):
    """A proxy answers the first bulk request with a 5xx for every item (shards
    unavailable, a node restarting): no item is dropped as rejected; they wait in the
    spool and the next drain delivers each exactly once."""
    from fixtures_osmem import CompatProxy

    failed: list[int] = []
    proxy = CompatProxy(osmem, intercept=fail_first_bulk(
        [500, 502, 503, 504], "unavailable_shards_exception", "primary shard not active", failed))
    try:
        settings = spool_five_hits(proxy.url, tmp_path, store, sinkdata)
        first = spool.drain(store, settings)
        assert failed == [10]
        assert (first.delivered, first.retry_later, first.rejected) == (0, 10, 0)
        assert first.pending == 10 and spool.rejected_items(store.conn) == []
        second = spool.drain(store, settings)
    finally:
        proxy.close()
    assert second.delivered == 10 and second.pending == 0 and second.rejected == 0
    assert osmem.request("GET", "/leaksentry-hits/_count")["count"] == 5


def test_server_stopped_during_a_drain(osmem, tmp_path, store, sinkdata):
    """The server dies between two bulk requests of one drain: what it took is not sent
    again, the rest waits, and after the restart every document is there exactly once."""
    from fixtures_osmem import CompatProxy

    bulks: list[int] = []

    def kill_before_second_bulk(method, path, body, headers):
        if path.startswith("/_bulk"):
            bulks.append(1)
            if len(bulks) == 2:
                osmem.stop()
        return None

    proxy = CompatProxy(osmem, intercept=kill_before_second_bulk)
    try:
        settings = make_settings(proxy.url, tmp_path, chunk_size=10, timeout=2)
        setup.setup(connect(settings.elasticsearch))
        findings = sinkdata.a_month_of_findings(sinkdata.people(30), ["pastebin"], 20)
        for f in findings:
            record_finding(store, f, settings)
        down = spool.drain(store, settings)
        assert down.delivered == 10 and down.error and down.pending == 30
        osmem.restart()
        setup.setup(connect(settings.elasticsearch))
        up = spool.drain(store, settings)
        assert up.delivered == 30 and up.duplicates == 0 and up.pending == 0
    finally:
        proxy.close()
    cluster = connect(make_settings(osmem.url, tmp_path).elasticsearch)
    got = ids_in(cluster, "leaksentry-hits") + ids_in(cluster, "leaksentry-documents")
    # the restarted server is empty: exactly the 30 not delivered before the crash
    assert len(got) == len(set(got)) == 30
