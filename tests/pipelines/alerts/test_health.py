"""Source-health alerts: one alert when a source turns unhealthy, one recovery."""

from __future__ import annotations

from datetime import timedelta

from leaksentry.store import outbox
from leaksentry.store.runs import record_run
from pipelines.alerts.health import plan_health_alerts
from pipelines.alerts.worker import deliver_pending
from pipelines.model import RunSummary


def run(store, source, at, outcome="ok", discovered=5, error=None):
    with store.transaction() as tx:
        record_run(tx, RunSummary(source=source, started_at=at, finished_at=at,
                                  outcome=outcome, discovered=discovered, error=error),
                   unhealthy_after=3)


def kinds(store):
    return [(a.kind, a.source) for _, a in
            sorted(outbox.deliveries(store.conn, limit=100), key=lambda x: x[0].id)]


def test_one_alert_when_unhealthy_and_one_when_recovered(store, kit, tmp_path, receiver, rng,
                                                        people):
    s = kit.settings_with(tmp_path, [{"name": "hook", "type": "webhook", "url": receiver.url,
                                      "secret": kit.SECRET}])
    t = kit.T0
    run(store, "pastebin", t)
    run(store, "gists", t)
    assert plan_health_alerts(store, s, t) == 0  # first seen healthy: silent
    bad = f"HTTP 403 at https://paste.example/u/{people[0].hkid}"
    for i in range(1, 6):
        run(store, "pastebin", t + timedelta(minutes=i), outcome="error", error=bad)
        plan_health_alerts(store, s, t + timedelta(minutes=i))
    assert kinds(store) == [("health", "pastebin")]
    for i in range(6, 9):
        run(store, "pastebin", t + timedelta(minutes=i))
        plan_health_alerts(store, s, t + timedelta(minutes=i))
    assert kinds(store) == [("health", "pastebin"), ("recovery", "pastebin")]
    # a source that silently finds nothing
    for i in range(9, 13):
        run(store, "gists", t + timedelta(minutes=i), discovered=0)
        plan_health_alerts(store, s, t + timedelta(minutes=i))
    assert kinds(store)[-1] == ("health", "gists") and len(kinds(store)) == 3

    assert deliver_pending(store, s, t + timedelta(minutes=20), rng=rng).delivered == 3
    first = receiver.requests[0].json()
    assert first["type"] == "health" and first["alert"]["source"] == "pastebin"
    assert "3 consecutive failed runs" in first["alert"]["reason"]
    assert "****" in first["alert"]["last_error"]
    kit.assert_no_plaintext([q.body.decode() for q in receiver.requests], people[:1])
    assert receiver.requests[2].json()["alert"]["reason"].startswith("discovered nothing")


def test_health_channels_and_disabled(store, kit, tmp_path):
    chans = [{"name": "a", "type": "syslog", "port": 5514},
             {"name": "b", "type": "syslog", "port": 5515}]
    s = kit.settings_with(tmp_path, chans, health_channels=["b"])
    for i in range(3):
        run(store, "src", kit.T0 + timedelta(minutes=i), outcome="timeout")
    assert plan_health_alerts(store, s, kit.T0) == 1
    assert [d.channel for d, _ in outbox.deliveries(store.conn)] == ["b"]
    assert plan_health_alerts(store, s, kit.T0) == 0  # announced once
