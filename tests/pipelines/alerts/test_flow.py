"""Through `pipelines.flow.record_finding`: the hit and its alert are written in
one transaction by the real local store; a duplicate hit alerts nothing."""

from __future__ import annotations

from datetime import timedelta

from leaksentry.store import outbox
from pipelines.alerts.worker import deliver_pending
from pipelines.flow import record_finding


def test_record_finding_plans_once_and_resighting_elsewhere(store, kit, people, tmp_path,
                                                            receiver, rng):
    s = kit.settings_with(tmp_path, [{"name": "hook", "type": "webhook", "url": receiver.url,
                                      "secret": kit.SECRET}])
    f = kit.make_finding(people[:6], sha="ee" * 32)
    first = record_finding(store, f, s)
    assert first is not None and first.new
    again = record_finding(store, f, s)  # same sha256 at the same URL: a duplicate
    assert again is not None and not again.new
    assert len(outbox.deliveries(store.conn)) == 1
    # the same records in another file at another URL: a re-sighting of alert 1
    moved = kit.make_finding(people[:6], sha="ef" * 32, url="https://mirror.example/y",
                             at=kit.T0 + timedelta(hours=2))
    record_finding(store, moved, s)
    kinds = sorted((a.kind, a.thread_id) for _, a in outbox.deliveries(store.conn))
    assert kinds == [("hit", None), ("re-sighting", 1)]
    report = deliver_pending(store, s, kit.T0 + timedelta(hours=2), rng=rng)
    assert report.delivered == 2
    assert [q.json()["type"] for q in receiver.requests] == ["hit", "re-sighting"]
    assert receiver.requests[1].json()["thread"] == kit.alert_key(store, 1, "hook")


def test_non_hit_documents_alert_nothing(store, kit, people, tmp_path):
    s = kit.settings_with(tmp_path, [{"name": "hook", "type": "syslog", "port": 5514}])
    f = kit.make_finding(people[:1], severity="none")
    f.result.matched_records = 0
    f.result.record_refs = []
    f.result.matches = []
    f.result.unmatched_valid = {}
    record_finding(store, f, s)
    assert outbox.deliveries(store.conn) == []
