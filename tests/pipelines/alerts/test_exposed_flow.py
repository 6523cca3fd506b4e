"""What a hit exposed travels with it: a real XLSX leak through the real extractor and
matcher, `record_finding` (SQLite, spool, outbox), osmem-server and a webhook receiver.
The exposed fields and categories are in the hits table, `leaksentry hits --json`, the
Elasticsearch hit document (mapped: filterable) and every channel's rendering of the
alert; no planted value (name, identifier, procedure) is in any of them."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from leaksentry import synth
from leaksentry.config import Settings
from leaksentry.store import Store, outbox
from pipelines.alerts import render
from pipelines.alerts.worker import deliver_pending
from pipelines.flow import record_finding
from pipelines.match import Matcher, build_fingerprints, generate_key, read_key
from pipelines.model import Document
from pipelines.process import scan_document
from pipelines.sinks import spool
from pipelines.sinks.client import connect
from pipelines.sinks.local import query_hits
from pipelines.sinks.setup import setup

N = 40
HEAD = ["Patient Name", "Gender", "HKID", "Hospital No", "Procedure", "Remarks"]
FIELDS = ["Patient Name", "Gender", "HKID", "Hospital No", "Procedure"]
CATEGORIES = ["name", "gender", "diagnosis/procedure", "identifier"]


@pytest.fixture(scope="module")
def matcher(tmp_path_factory) -> Matcher:
    d = tmp_path_factory.mktemp("fp")
    generate_key(d / "key")
    with open(d / "register.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(synth.register_rows(N, seed=33))
    build_fingerprints(d / "register.csv", read_key(d / "key"), d / "fp")
    return Matcher.load(d / "key", d / "fp")


def xlsx(people: list[synth.Patient]) -> bytes:
    import xlsxwriter

    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True})
    ws = wb.add_worksheet("OT list")
    ws.write_row(0, 0, HEAD)
    for r, p in enumerate(people, 1):
        ws.write_row(r, 0, [p.name, p.gender, p.hkid, p.hn, p.procedure, ""])
    wb.close()
    return buf.getvalue()


def assert_no_values(text: str, people: list[synth.Patient], kit) -> None:
    kit.assert_no_plaintext([text], people)
    for p in people:
        assert p.name not in text and p.procedure not in text


def test_exposed_fields_in_sqlite_es_and_alerts(matcher, osmem, receiver, kit, rng, tmp_path):
    people = list(synth.patients(N, seed=33))[:25]
    settings = Settings.model_validate({
        "state": {"dir": str(tmp_path / "state")},
        "elasticsearch": {"url": osmem.url, "backend": "opensearch"},
        "alerts": {"channels": [{"name": "hook", "type": "webhook", "url": receiver.url,
                                 "secret": kit.SECRET}]},
    })
    doc = Document(url="https://files.example/d/ot_list.xlsx", source="files",
                   content=xlsx(people), filename="ot_list.xlsx")
    finding = scan_document(doc, matcher)
    assert finding.result.matched_records == len(people)
    assert finding.result.exposed_fields == FIELDS
    assert finding.result.exposed_categories == CATEGORIES
    store = Store(settings.state.db)
    try:
        assert record_finding(store, finding, settings) is not None

        # SQLite, and what `hits --json` prints from it
        row = store.conn.execute("SELECT exposed_fields, exposed_categories FROM hits").fetchone()
        assert json.loads(row[0]) == FIELDS and json.loads(row[1]) == CATEGORIES
        (hit,) = query_hits(store.conn)
        assert hit.to_json()["exposed_fields"] == FIELDS
        assert hit.to_json()["exposed_categories"] == CATEGORIES
        assert_no_values(json.dumps(list(row)), people, kit)

        # Elasticsearch: in the hit document, and mapped (a term query finds it)
        cluster = connect(settings.elasticsearch)
        setup(cluster)
        assert spool.drain(store, settings).delivered == 2
        found = cluster.request("POST", "/leaksentry-hits/_search", {"query": {"term": {
            "leaksentry.exposed_categories": "diagnosis/procedure"}}})["hits"]["hits"]
        assert len(found) == 1
        es = found[0]["_source"]["leaksentry"]
        assert es["exposed_fields"] == FIELDS and es["exposed_categories"] == CATEGORIES
        none = cluster.request("POST", "/leaksentry-hits/_search", {"query": {"term": {
            "leaksentry.exposed_categories": "address"}}})["hits"]["hits"]
        assert none == []
        assert_no_values(json.dumps([es["exposed_fields"], es["exposed_categories"]]),
                         people, kit)

        # the alert: the webhook's JSON payload and every channel's words
        assert len(outbox.deliveries(store.conn)) == 1
        report = deliver_pending(store, settings, datetime.now(UTC) + timedelta(minutes=1),
                                 rng=rng)
        assert report.delivered == 1
        payload = receiver.requests[0].json()["alert"]
        assert payload["exposed_fields"] == FIELDS
        assert payload["exposed_categories"] == CATEGORIES
        facts = dict(render.facts(payload))
        assert facts["Exposed"] == "name, gender, diagnosis/procedure, identifier"
        assert facts["Exposed fields"] == ", ".join(FIELDS)
        words = [render.text(payload), render.html_body(payload),
                 json.dumps(render.slack(payload)), json.dumps(render.teams(payload))]
        for w in words:
            assert "diagnosis/procedure" in w and "Hospital No" in w
        assert_no_values(json.dumps([payload["exposed_fields"],
                                     payload["exposed_categories"]]), people, kit)
    finally:
        store.close()


def test_an_index_made_before_the_upgrade_takes_the_new_fields(matcher, osmem, tmp_path):
    """Monthly indices created by an older template (strict mapping without the exposed
    fields) would refuse new hit documents; the spool's template check updates them."""
    from pipelines.sinks import templates

    settings = Settings.model_validate({
        "state": {"dir": str(tmp_path / "state")},
        "elasticsearch": {"url": osmem.url, "backend": "opensearch"}})
    cluster = connect(settings.elasticsearch)
    setup(cluster)
    # what version 1 installed: no exposed_* fields, template_version 1
    old = templates.index_template("leaksentry", "hits")
    props = old["template"]["mappings"]["properties"]["leaksentry"]["properties"]
    del props["exposed_fields"], props["exposed_categories"]
    old["_meta"]["template_version"] = 1
    cluster.request("PUT", "/_index_template/leaksentry-hits", old)
    cluster.request("DELETE", "/leaksentry-hits-*")
    from pipelines.sinks.ecs import month_index

    cluster.request("PUT", f"/{month_index('leaksentry', 'hits', datetime.now(UTC))}")
    people = list(synth.patients(N, seed=33))[:5]
    doc = Document(url="https://files.example/d/x.xlsx", source="files", content=xlsx(people),
                   filename="x.xlsx")
    store = Store(settings.state.db)
    try:
        record_finding(store, scan_document(doc, matcher), settings)
        report = spool.drain(store, settings)
        assert report.delivered == 2 and report.rejected == 0, report
    finally:
        store.close()
    got = cluster.request("POST", "/leaksentry-hits/_search", {})["hits"]["hits"]
    assert got[0]["_source"]["leaksentry"]["exposed_categories"] == CATEGORIES
