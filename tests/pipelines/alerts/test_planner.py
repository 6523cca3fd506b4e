"""Routing, dedupe, digests and rate limits, planned with a controllable clock."""

from __future__ import annotations

from datetime import timedelta

from leaksentry.store import outbox
from pipelines.alerts.planner import plan_alerts, route
from pipelines.alerts.worker import deliver_pending, flush_digests

HOOK = {"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/none"}
SOC = {"name": "soc", "type": "webhook", "url": "http://127.0.0.1:9/soc"}


def plan(store, kit, finding, hit, settings, now=None):
    with store.transaction() as tx:
        plan_alerts(tx, finding, hit, settings, now=now)


def rows(store):
    return sorted(((d.channel, d.state, a.kind, a.thread_id) for d, a in
                   outbox.deliveries(store.conn, limit=1000)), key=str)


def test_new_hit_writes_one_pending_delivery_per_channel(store, kit, people, tmp_path):
    s = kit.settings_with(tmp_path, [HOOK, SOC])
    plan(store, kit, kit.make_finding(people[:3]), kit.stored(people[:3]), s)
    assert rows(store) == [("hook", "pending", "hit", None), ("soc", "pending", "hit", None)]
    assert outbox.outbox_counts(store.conn) == {"pending": 2, "retrying": 0, "delivered": 0,
                                               "dead": 0}


def test_duplicate_hit_is_not_alerted_again(store, kit, people, tmp_path):
    s = kit.settings_with(tmp_path, [HOOK])
    f = kit.make_finding(people[:3])
    plan(store, kit, f, kit.stored(people[:3], 1), s)
    plan(store, kit, f, kit.stored(people[:3], 1, new=False), s)
    assert len(rows(store)) == 1


def test_min_severity_and_rules_route(kit, people, tmp_path):
    s = kit.settings_with(tmp_path, [HOOK, SOC], min_severity="medium", rules=[
        {"name": "pager", "min_severity": "critical", "channels": ["soc"]},
        {"name": "paste-hn", "sources": ["pastebin"], "kinds": ["hn"], "channels": ["hook"]},
        {"name": "gists", "sources": ["gists"], "channels": ["hook"]},
    ])
    crit = kit.make_finding(people[:2], severity="critical", source="telegram")
    assert route(crit, s) == ["soc"]
    high_paste = kit.make_finding(people[:2], severity="high", source="pastebin")
    assert route(high_paste, s) == ["hook"]
    high_other = kit.make_finding(people[:2], severity="high", source="telegram")
    assert route(high_other, s) == []
    low = kit.make_finding(people[:2], severity="low", source="gists")
    assert route(low, s) == []  # below the global floor
    off = kit.settings_with(tmp_path, [HOOK], enabled=False)
    assert route(crit, off) == []


def test_same_document_elsewhere_is_a_resighting_in_the_first_thread(store, kit, people,
                                                                     tmp_path):
    s = kit.settings_with(tmp_path, [HOOK])
    first = kit.make_finding(people[:5], url="https://a.example/1", sha="ab" * 32)
    plan(store, kit, first, kit.stored(people[:5], 1), s)
    again = kit.make_finding(people[:5], url="https://b.example/2", sha="ab" * 32,
                             at=kit.T0 + timedelta(hours=5))
    plan(store, kit, again, kit.stored(people[:5], 2, at=again.fetched_at), s)
    (_d1, a1), (d2, a2) = sorted(outbox.deliveries(store.conn), key=lambda x: x[1].id)
    assert (a1.kind, a2.kind) == ("hit", "re-sighting")
    assert a2.thread_id == a1.id and a2.payload["thread_id"] == a1.id
    assert d2.state == "pending"  # a short low-priority notice, not a new page
    assert (a1.severity, a2.severity) == ("critical", "low")
    assert a2.payload["severity"] == "low" and a2.payload["hit_severity"] == "critical"


def test_same_records_reuploaded_as_another_file_is_a_resighting(store, kit, people, tmp_path):
    s = kit.settings_with(tmp_path, [HOOK])
    plan(store, kit, kit.make_finding(people[:5], sha="01" * 32), kit.stored(people[:5], 1), s)
    other = kit.make_finding(people[:5], sha="02" * 32, url="https://c.example/x.xlsx",
                             at=kit.T0 + timedelta(days=1))
    plan(store, kit, other, kit.stored(people[:5], 2), s)
    different = kit.make_finding(people[5:9], sha="03" * 32, at=kit.T0 + timedelta(days=1))
    plan(store, kit, different, kit.stored(people[5:9], 3), s)
    assert [k for _, _, k, _ in rows(store)].count("hit") == 2
    assert [k for _, _, k, _ in rows(store)].count("re-sighting") == 1


def test_outside_the_dedupe_window_it_is_a_new_alert(store, kit, people, tmp_path):
    s = kit.settings_with(tmp_path, [HOOK], dedupe_window="2d")
    plan(store, kit, kit.make_finding(people[:5], sha="01" * 32), kit.stored(people[:5], 1), s)
    late = kit.make_finding(people[:5], sha="01" * 32, url="https://late.example/",
                            at=kit.T0 + timedelta(days=3))
    plan(store, kit, late, kit.stored(people[:5], 2), s)
    assert [k for _, _, k, _ in rows(store)] == ["hit", "hit"]


def test_dedupe_window_boundary(store, kit, people, tmp_path):
    """The window includes its end: a copy seen exactly dedupe_window after the first
    alert is a re-sighting, one microsecond later a new alert (by sha256 and by records)."""
    s = kit.settings_with(tmp_path, [HOOK], dedupe_window="2d")
    edge = kit.T0 + timedelta(days=2)
    for n, (who, sha, at) in enumerate([(people[:5], "01", edge),
                                        (people[5:10], "02", edge + timedelta(microseconds=1)),
                                        (people[10:15], None, edge)]):
        plan(store, kit, kit.make_finding(who, sha=(sha or "0a") * 32),
             kit.stored(who, 2 * n + 1), s)
        again = kit.make_finding(who, sha=(sha or "0b") * 32, url="https://again.example/",
                                 at=at)
        plan(store, kit, again, kit.stored(who, 2 * n + 2, at=at), s)
    alerts = sorted((a for _, a in outbox.deliveries(store.conn, limit=100)),
                    key=lambda a: a.id)
    assert [a.kind for a in alerts] == ["hit", "re-sighting", "hit", "hit", "hit",
                                        "re-sighting"]


def test_resightings_can_go_to_the_digest(store, kit, people, tmp_path):
    s = kit.settings_with(tmp_path, [HOOK], resightings="digest")
    plan(store, kit, kit.make_finding(people[:5], sha="01" * 32), kit.stored(people[:5], 1), s)
    plan(store, kit, kit.make_finding(people[:5], sha="01" * 32, url="https://x.example/"),
         kit.stored(people[:5], 2), s)
    assert ("hook", "batched", "re-sighting", 1) in rows(store)


def test_low_severity_waits_for_the_digest_then_goes_as_one(store, kit, people, tmp_path,
                                                            receiver):
    s = kit.settings_with(tmp_path, [{**HOOK, "url": receiver.url, "secret": kit.SECRET}],
                          digest_interval="1h")
    for i in range(3):
        f = kit.make_finding(people[i * 3:i * 3 + 3], severity="low", sha=f"{i:02d}" * 32,
                             at=kit.T0 + timedelta(minutes=10 * i))
        plan(store, kit, f, kit.stored(people[i * 3:i * 3 + 3], i + 1), s)
    assert {st for _, st, _, _ in rows(store)} == {"batched"}
    # not due yet: nothing assembled, nothing sent
    assert flush_digests(store, s, kit.T0 + timedelta(minutes=59)) == 0
    report = deliver_pending(store, s, kit.T0 + timedelta(minutes=59))
    assert report.delivered == 0 and receiver.requests == []
    report = deliver_pending(store, s, kit.T0 + timedelta(minutes=61))
    assert report.digests == 1 and report.delivered == 1
    (req,) = receiver.requests
    body = req.json()
    assert body["type"] == "digest" and body["alert"]["count"] == 3
    assert [i["severity"] for i in body["alert"]["items"]] == ["low"] * 3
    states = {st for _, st, _, _ in rows(store)}
    assert states == {"digested", "delivered"}
    assert outbox.outbox_counts(store.conn)["delivered"] == 4
    # nothing left to digest
    assert flush_digests(store, s, kit.T0 + timedelta(hours=5)) == 0


def test_digest_rows_of_a_removed_channel_become_dead_letters(store, kit, people, tmp_path,
                                                            receiver):
    """A channel taken out of the config must not leave its batched alerts waiting
    forever: they become dead letters, and come back with ``alerts retry``."""
    hook = {**HOOK, "url": receiver.url, "secret": kit.SECRET}
    s = kit.settings_with(tmp_path, [hook], digest_interval="1h")
    plan(store, kit, kit.make_finding(people[:3], severity="low"), kit.stored(people[:3]), s)
    assert {st for _, st, _, _ in rows(store)} == {"batched"}

    without = kit.settings_with(tmp_path, [SOC], digest_interval="1h")
    report = deliver_pending(store, without, kit.T0 + timedelta(minutes=5))
    assert report.digests == 0 and receiver.requests == []
    (d, _), = outbox.deliveries(store.conn)
    assert d.state == "dead" and "no longer configured" in (d.last_error or "")

    with store.transaction() as tx:  # the channel is back: `alerts retry`
        assert outbox.requeue_dead(tx, kit.T0 + timedelta(minutes=6)) == 1
    report = deliver_pending(store, s, kit.T0 + timedelta(minutes=7))
    assert report.delivered == 1 and len(receiver.requests) == 1


def test_rate_limit_sends_the_overflow_to_the_digest(store, kit, people, tmp_path):
    s = kit.settings_with(tmp_path, [{**HOOK, "rate_limit": 2, "rate_window": "1h"}])
    for i in range(4):
        f = kit.make_finding(people[i:i + 1], sha=f"{i:02d}" * 32,
                             at=kit.T0 + timedelta(minutes=i))
        plan(store, kit, f, kit.stored(people[i:i + 1], i + 1), s)
    states = [d.state for d, _ in sorted(outbox.deliveries(store.conn), key=lambda x: x[0].id)]
    assert states == ["pending", "pending", "batched", "batched"]
    # once the window has passed the channel may page again
    f = kit.make_finding(people[10:11], sha="aa" * 32, at=kit.T0 + timedelta(minutes=90))
    plan(store, kit, f, kit.stored(people[10:11], 9), s)
    assert sorted(outbox.deliveries(store.conn), key=lambda x: x[0].id)[-1][0].state == "pending"


def test_planning_rolls_back_with_the_hit(store, kit, people, tmp_path):
    """Same transaction as the hit: if storing the hit fails, no alert remains."""
    s = kit.settings_with(tmp_path, [HOOK])
    try:
        with store.transaction() as tx:
            plan_alerts(tx, kit.make_finding(people[:2]), kit.stored(people[:2]), s)
            raise RuntimeError("the hit could not be stored")
    except RuntimeError:
        pass
    assert rows(store) == []
