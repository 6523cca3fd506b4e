"""The local SQLite sink: documents, hits, re-sightings, records_key, queries, purge."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from pipelines.sinks import local, retention


def test_every_document_recorded_hits_only_for_hits(store, sinkdata):
    ps = sinkdata.people(5)
    with store.transaction() as tx:
        assert local.save_finding(tx, sinkdata.clean_finding("https://a.example/1")) is None
        stored = local.save_finding(tx, sinkdata.hit_finding(ps, url="https://a.example/2"))
    assert stored is not None and stored.new
    assert local.count_documents(store.conn) == 2
    hits = local.query_hits(store.conn)
    assert [h.hit_id for h in hits] == [stored.hit_id]
    h = hits[0]
    assert h.matched_records == 5 and h.record_refs == ["1", "2", "3", "4", "5"]
    assert h.severity == "medium" and h.kinds == ["hkid", "hn"]
    assert h.matches[0]["masked"].count("*") == 4 and h.matches[0]["where"] == "Sheet1!C2"
    assert h.unmatched_valid == {"hkid": 2} and h.domain == "a.example"


def test_resighting_is_not_new_and_updates_last_seen(store, sinkdata):
    ps = sinkdata.people(3)
    f1 = sinkdata.hit_finding(ps, url="https://a.example/x")
    later = sinkdata.hit_finding(ps, url="https://a.example/x",
                                 when=sinkdata.BASE_TIME + timedelta(hours=5))
    with store.transaction() as tx:
        s1 = local.save_finding(tx, f1)
    with store.transaction() as tx:
        s2 = local.save_finding(tx, later)
    assert s1.new and not s2.new
    assert s2.hit_id == s1.hit_id and s2.first_seen == s1.first_seen
    assert s2.records_key == s1.records_key
    (h,) = local.query_hits(store.conn)
    assert h.sightings == 2 and h.last_seen == later.fetched_at


def test_records_key_same_set_same_key_any_order(store, sinkdata):
    ps = sinkdata.people(6)
    with store.transaction() as tx:
        a = local.save_finding(tx, sinkdata.hit_finding(ps[:4], url="https://a.example/1"))
        b = local.save_finding(tx, sinkdata.hit_finding(list(reversed(ps[:4])),
                                                        url="https://b.example/other"))
        c = local.save_finding(tx, sinkdata.hit_finding(ps[:5], url="https://c.example/2"))
    assert b.new and a.hit_id != b.hit_id
    assert a.records_key == b.records_key != c.records_key


def test_query_filters(store, sinkdata):
    ps = sinkdata.people(150)
    with store.transaction() as tx:
        for f in sinkdata.a_month_of_findings(ps, ["pastebin", "gists"], 30):
            local.save_finding(tx, f)
    all_hits = local.query_hits(store.conn, limit=1000)
    assert len(all_hits) == 30
    crit = local.query_hits(store.conn, min_severity="critical", limit=1000)
    assert crit and all(h.severity == "critical" for h in crit)
    assert len(crit) == sum(h.severity == "critical" for h in all_hits)
    gists = local.query_hits(store.conn, source="gists", limit=1000)
    assert len(gists) == 15 and {h.source for h in gists} == {"gists"}
    since = sinkdata.BASE_TIME - timedelta(days=2)
    recent = local.query_hits(store.conn, since=since, limit=1000)
    assert recent and all(h.last_seen >= since for h in recent)
    assert len(recent) < 30
    assert len(local.query_hits(store.conn, limit=7)) == 7
    # newest first
    times = [h.last_seen for h in all_hits]
    assert times == sorted(times, reverse=True)
    with pytest.raises(ValueError, match="unknown severity"):
        local.query_hits(store.conn, min_severity="urgent")


def test_plaintext_in_stranger_fields_is_masked_in_the_store(store, sinkdata, store_dump):
    ps = sinkdata.people(4)
    f = sinkdata.hit_finding(ps, url=f"https://a.example/{ps[1].hkid}", leak_in_text=True)
    with store.transaction() as tx:
        local.save_finding(tx, f)
    raw = store_dump(store)
    for form in sinkdata.planted_forms(ps):
        if len(form) < 7:
            continue
        assert form.encode() not in raw, "plaintext identifier in the state store"
    (h,) = local.query_hits(store.conn)
    assert "****" in h.url and "****" in (h.filename or "")
    assert json.dumps(h.to_json())
    skipped, partial = store.conn.execute("SELECT skipped, partial FROM documents").fetchone()
    (s,) = json.loads(skipped)
    assert partial == 1 and s["status"] == "corrupt" and "****" in s["where"]


def test_purge_drops_old_rows(store, sinkdata):
    ps = sinkdata.people(3)
    old = sinkdata.hit_finding(ps, url="https://a.example/old",
                               when=sinkdata.BASE_TIME - timedelta(days=400))
    new = sinkdata.hit_finding(ps, url="https://a.example/new", when=sinkdata.utc_now())
    with store.transaction() as tx:
        local.save_finding(tx, old)
        local.save_finding(tx, new)
        local.save_finding(tx, sinkdata.clean_finding(
            "https://a.example/c", when=sinkdata.BASE_TIME - timedelta(days=400)))
    assert retention.purge(store, 365 * 86400) == 3  # old hit + its document + clean doc
    assert [h.url for h in local.query_hits(store.conn)] == ["https://a.example/new"]
    assert local.count_documents(store.conn) == 1
