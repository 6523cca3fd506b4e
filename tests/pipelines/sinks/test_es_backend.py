"""The ``backend = "elasticsearch"`` path: the official client against osmem-server.

The official ``elasticsearch`` 9.x client always sends the compatibility media
type ``application/vnd.elasticsearch+json; compatible-with=9``, which osmem
(an OpenSearch-dialect server) refuses with 406. These tests therefore go
through ``es_compat_proxy`` (tests/fixtures_osmem.py), a small test-only proxy
that rewrites only that media type to ``application/json`` and passes
everything else — paths, bodies, status codes — through to the real server.
No client is mocked.
"""

from __future__ import annotations

import pytest
from elasticsearch import Elasticsearch

from leaksentry.config import Settings
from leaksentry.store import Store
from pipelines.flow import record_finding
from pipelines.sinks import setup, spool
from pipelines.sinks.client import connect


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state.db")
    yield s
    s.close()


def es_settings(url: str, tmp_path) -> Settings:
    return Settings.model_validate({
        "state": {"dir": str(tmp_path)},
        "elasticsearch": {"url": url, "backend": "elasticsearch", "index_prefix": "ls",
                          "initial_backoff": 0.05, "timeout": 3},
    })


def test_the_server_refuses_the_clients_bulk_without_the_proxy(osmem, tmp_path, store,
                                                              sinkdata):
    """Why the proxy exists: the client's bulk body is sent as the compat media type."""
    settings = es_settings(osmem.url, tmp_path)
    record_finding(store, sinkdata.hit_finding(sinkdata.people(2), url="https://a.example/1"),
                   settings)
    report = spool.drain(store, settings)
    assert "406" in (report.error or "") and report.delivered == 0
    assert report.pending == 2  # nothing lost: still spooled


def test_setup_index_and_search_with_the_official_client(es_compat_proxy, tmp_path, store,
                                                         sinkdata):
    settings = es_settings(es_compat_proxy.url, tmp_path)
    cluster = connect(settings.elasticsearch)
    assert isinstance(cluster.client, Elasticsearch)
    report = setup.setup(cluster)
    assert report.retention == "none"
    # the policy API follows the server (OpenSearch: ISM), which osmem does not have
    assert any("ISM is not supported" in n for n in report.notes)
    assert report.templates == ["ls-hits", "ls-documents"]
    check = setup.check(cluster)
    assert check.reachable and check.auth_ok and check.templates == {
        "ls-hits": "ok", "ls-documents": "ok"}
    # the server is OpenSearch: check tells the user which backend fits
    assert any("backend = \"opensearch\"" in p for p in check.problems)

    ps = sinkdata.people(40)
    findings = sinkdata.a_month_of_findings(ps, ["pastebin", "gists"], 20)
    for f in findings:
        record_finding(store, f, settings)
    first = spool.drain(store, settings)
    assert first.delivered == 40 and first.pending == 0 and first.error is None
    for f in findings:  # the same scans again: a re-sent batch, answered 409
        record_finding(store, f, settings)
    again = spool.drain(store, settings)
    # the coverage documents are answered 409; each hit is a re-sighting: a partial update
    assert (again.delivered, again.duplicates, again.pending) == (20, 20, 0)
    got = cluster.client.search(index="ls-hits", size=100)["hits"]["hits"]
    assert {h["_source"]["leaksentry"]["sightings"] for h in got} == {2}
    got = cluster.client.search(index="ls-hits", size=0, aggs={
        "src": {"terms": {"field": "leaksentry.source"}}})
    assert got["hits"]["total"]["value"] == 20
    assert {b["key"]: b["doc_count"] for b in got["aggregations"]["src"]["buckets"]} == {
        "pastebin": 10, "gists": 10}
    crit = cluster.client.count(index="ls-hits", query={"term": {
        "leaksentry.severity": "critical"}})["count"]
    assert crit == sum(f.result.severity == "critical" for f in findings)


def test_unreachable_cluster_reports_without_raising(tmp_path, store, sinkdata):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = es_settings(f"http://127.0.0.1:{port}", tmp_path)
    record_finding(store, sinkdata.hit_finding(sinkdata.people(2), url="https://a.example/1"),
                   settings)
    report = spool.drain(store, settings)
    assert report.unreachable and report.pending == 2 and report.delivered == 0
    assert f"127.0.0.1:{port}" in (report.error or "")
