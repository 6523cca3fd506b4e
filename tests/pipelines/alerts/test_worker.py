"""Delivery through a real local HTTP receiver: signatures, idempotency keys,
backoff, dead letters, and a worker killed mid-delivery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from leaksentry.store import Store, outbox
from pipelines.alerts.planner import plan_alerts
from pipelines.alerts.worker import backoff, deliver_pending


def hook(receiver, kit, **kw):
    return {"name": "hook", "type": "webhook", "url": receiver.url, "secret": kit.SECRET, **kw}


def plan_one(store, kit, people, settings, sev="critical"):
    with store.transaction() as tx:
        plan_alerts(tx, kit.make_finding(people[:4], severity=sev), kit.stored(people[:4]),
                    settings)


def test_signed_webhook_is_verified_by_the_receiver(store, kit, people, tmp_path, receiver, rng):
    s = kit.settings_with(tmp_path, [hook(receiver, kit, headers={"X-Team": "soc"})])
    plan_one(store, kit, people, s)
    report = deliver_pending(store, s, kit.T0, rng=rng)
    assert (report.delivered, report.failed, report.dead) == (1, 0, 0)
    (req,) = receiver.requests
    assert req.verified is True and req.status == 200
    assert req.headers["idempotency-key"] == kit.alert_key(store, 1, "hook")
    assert req.headers["x-leaksentry-event"] == "hit"
    assert req.headers["x-team"] == "soc"
    alert = req.json()["alert"]
    assert alert["severity"] == "critical" and alert["matched_records"] == 4
    assert alert["record_refs"] == [p.ref for p in people[:4]]
    assert alert["identifiers"][0]["masked"] == kit.masked_hkid(people[0].hkid)
    assert alert["sha256"] and alert["size"] == 123_456 and alert["filename"] == "export.csv"
    assert alert["full_list"] == "leaksentry hits --json"
    # nothing due any more
    assert deliver_pending(store, s, kit.T0 + timedelta(days=1)).delivered == 0


def test_wrong_secret_is_rejected_and_not_retried_forever(store, kit, people, tmp_path,
                                                          receiver, rng):
    s = kit.settings_with(tmp_path, [hook(receiver, kit, secret="not-the-secret")])
    plan_one(store, kit, people, s)
    report = deliver_pending(store, s, kit.T0, rng=rng)
    assert report.dead == 1  # 401 is permanent
    assert receiver.requests[0].verified is False and receiver.processed == []
    (d, _), = outbox.deliveries(store.conn)
    assert d.state == "dead" and "HTTP 401" in (d.last_error or "")


def test_receiver_down_first_then_delivered_exactly_once(store, kit, people, tmp_path,
                                                         receivers, rng):
    r = kit.start_receiver(kit.Receiver(), listen=False)  # bound, refusing connections
    receivers.append(r)
    s = kit.settings_with(tmp_path, [hook(r, kit)], max_attempts=6)
    plan_one(store, kit, people, s)
    now = kit.T0
    delays = []
    for _ in range(3):
        report = deliver_pending(store, s, now, rng=rng)
        assert report.failed == 1 and report.delivered == 0
        (d, _), = outbox.deliveries(store.conn)
        assert d.state == "retrying" and "ConnectError" in (d.last_error or "")
        # not due before its backoff: a pass in between does nothing
        assert deliver_pending(store, s, now + timedelta(seconds=1), rng=rng).failed == 0
        delays.append((d.next_attempt_at - now).total_seconds())
        now = d.next_attempt_at
    assert delays[0] < delays[2]  # exponential
    kit.bring_up(r)
    report = deliver_pending(store, s, now, rng=rng)
    assert report.delivered == 1
    assert deliver_pending(store, s, now + timedelta(days=1), rng=rng).delivered == 0
    assert len(r.requests) == 1 and r.processed == [kit.alert_key(store, 1, "hook")]
    (d, _), = outbox.deliveries(store.conn)
    assert d.state == "delivered" and d.attempts == 4


def test_500_forever_becomes_a_dead_letter_and_can_be_requeued(store, kit, people, tmp_path,
                                                               receiver, rng, caplog):
    receiver.default_status = 500
    s = kit.settings_with(tmp_path, [hook(receiver, kit)], max_attempts=4)
    plan_one(store, kit, people, s)
    now, dead = kit.T0, 0
    for _ in range(10):
        report = deliver_pending(store, s, now, rng=rng)
        dead += report.dead
        now += timedelta(seconds=s.alerts.backoff_max)
    assert dead == 1 and len(receiver.requests) == 4
    assert outbox.outbox_counts(store.conn)["dead"] == 1
    (d, _), = outbox.deliveries(store.conn)
    assert d.state == "dead" and "HTTP 500" in (d.last_error or "")
    assert "dead letter" in caplog.text
    # the operator fixes the receiver and re-queues
    receiver.default_status = 200
    with store.transaction() as tx:
        assert outbox.requeue_dead(tx, now) == 1
    assert deliver_pending(store, s, now, rng=rng).delivered == 1
    assert outbox.outbox_counts(store.conn) == {"pending": 0, "retrying": 0, "delivered": 1,
                                               "dead": 0}


def test_retry_after_is_respected(store, kit, people, tmp_path, receivers, rng):
    r = kit.Receiver(statuses=[429], retry_after="240")
    kit.start_receiver(r)
    receivers.append(r)
    s = kit.settings_with(tmp_path, [hook(r, kit)])  # backoff_base 10s: first retry <= 10s
    plan_one(store, kit, people, s)
    assert deliver_pending(store, s, kit.T0, rng=rng).failed == 1
    (d, _), = outbox.deliveries(store.conn)
    assert (d.next_attempt_at - kit.T0).total_seconds() == 240
    assert deliver_pending(store, s, kit.T0 + timedelta(seconds=239), rng=rng).delivered == 0
    assert deliver_pending(store, s, kit.T0 + timedelta(seconds=240), rng=rng).delivered == 1


def test_backoff_grows_caps_and_jitters():
    import random

    rng = random.Random(1)
    values = [backoff(n, 10, 300, rng) for n in range(1, 9)]
    assert all(5 <= v <= 300 for v in values)
    assert values[-1] >= 150  # capped at 300, jitter keeps at least half
    assert backoff(1, 10, 300, rng) <= 10 < backoff(4, 10, 300, rng) * 2
    assert len({round(backoff(3, 10, 300, rng), 3) for _ in range(20)}) > 1


def test_unknown_channel_row_is_a_dead_letter_not_a_crash(store, kit, people, tmp_path,
                                                          receiver, rng):
    s = kit.settings_with(tmp_path, [hook(receiver, kit)])
    plan_one(store, kit, people, s)
    renamed = kit.settings_with(tmp_path, [hook(receiver, kit, name="other")])
    report = deliver_pending(store, renamed, kit.T0, rng=rng)
    assert report.dead == 1
    (d, _), = outbox.deliveries(store.conn)
    assert "no alert channel named 'hook'" in (d.last_error or "")


WORKER = textwrap.dedent("""
    import sys
    from datetime import datetime
    from leaksentry.config import Settings
    from leaksentry.store import Store
    from pipelines.alerts.worker import deliver_pending
    settings = Settings.model_validate_json(sys.argv[1])
    store = Store(settings.state.db)
    print("delivering", flush=True)
    deliver_pending(store, settings, datetime.fromisoformat(sys.argv[2]))
    print("returned", flush=True)
""")


@pytest.mark.timeout(60)
def test_worker_killed_mid_delivery_delivers_after_restart(kit, people, tmp_path, receivers,
                                                          rng, monkeypatch):
    """A real subprocess is SIGKILLed while the receiver holds its request; a fresh
    Store (a restarted daemon) delivers the alert after the lease, with the same
    idempotency key, so the receiver acts on it once."""
    import threading

    r = kit.Receiver(hang=threading.Event())
    kit.start_receiver(r)
    receivers.append(r)
    # secrets travel by environment (a JSON dump of the settings masks them)
    monkeypatch.setenv("TEST_HOOK_URL", r.url)
    monkeypatch.setenv("TEST_HOOK_SECRET", kit.SECRET)
    s = kit.settings_with(tmp_path, [{"name": "hook", "type": "webhook", "timeout": 30,
                                      "url_env": "TEST_HOOK_URL",
                                      "secret_env": "TEST_HOOK_SECRET"}], lease="5m")
    first = Store(s.state.db)
    with first.transaction() as tx:
        plan_alerts(tx, kit.make_finding(people[:3]), kit.stored(people[:3]), s)
    first.close()

    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen([sys.executable, "-c", WORKER, s.model_dump_json(),
                             kit.T0.isoformat()], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=root)
    try:
        if not r.arrived.wait(30):
            proc.kill()
            pytest.fail("the worker never reached the receiver: " + proc.stderr.read().decode())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    r.hang.set()

    store = Store(s.state.db)  # the restarted process
    (d, _), = outbox.deliveries(store.conn)
    assert d.state == "pending" and d.attempts == 1  # claimed, never finished
    # within the lease nobody sends it twice at once
    assert deliver_pending(store, s, kit.T0 + timedelta(minutes=1), rng=rng).delivered == 0
    report = deliver_pending(store, s, kit.T0 + timedelta(minutes=6), rng=rng)
    assert report.delivered == 1
    keys = [q.headers["idempotency-key"] for q in r.requests]
    assert keys == [kit.alert_key(store, 1, "hook")] * 2
    assert r.processed == [kit.alert_key(store, 1, "hook")]
    assert json.loads(r.requests[0].body) == json.loads(r.requests[1].body)
    store.close()


def test_killed_before_any_delivery_loses_nothing(kit, people, tmp_path, receiver, rng):
    """The process writes hit + alert and is killed before its worker ever runs."""
    s = kit.settings_with(tmp_path, [hook(receiver, kit)])
    code = textwrap.dedent("""
        import os, signal, sys
        from leaksentry.config import Settings
        from leaksentry.store import Store
        from pipelines.alerts.planner import plan_alerts
        from pipelines.model import Finding, Match, ScanResult, StoredHit
        from datetime import datetime
        s = Settings.model_validate_json(sys.argv[1])
        at = datetime.fromisoformat(sys.argv[2])
        f = Finding(url="https://paste.example/raw/k", source="pastebin", sha256="cd" * 32,
                    size=10, fetched_at=at, result=ScanResult(
                        severity="high", matched_records=1, record_refs=["7"],
                        matches=[Match("hkid", "A12****(3)", "7", 1, "line 1")]))
        store = Store(s.state.db)
        with store.transaction() as tx:
            plan_alerts(tx, f, StoredHit(1, True, at, "rk"), s)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    root = Path(__file__).resolve().parents[3]
    proc = subprocess.run([sys.executable, "-c", code, s.model_dump_json(), kit.T0.isoformat()],
                          env={**os.environ, "PYTHONPATH": str(root)}, cwd=root,
                          capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    store = Store(s.state.db)
    assert deliver_pending(store, s, kit.T0, rng=rng).delivered == 1
    assert receiver.requests[0].json()["alert"]["record_refs"] == ["7"]
    store.close()


def test_a_claimed_row_is_not_claimed_again_within_its_lease(store, kit, people, tmp_path):
    s = kit.settings_with(tmp_path, [{"name": "hook", "type": "syslog", "port": 5514}])
    plan_one(store, kit, people, s)
    (row,) = outbox.due_deliveries(store.conn, kit.T0)
    lease = kit.T0 + timedelta(minutes=5)
    with store.transaction() as tx:
        assert outbox.claim(tx, row.id, kit.T0, lease)
    with store.transaction() as tx:  # a second worker
        assert not outbox.claim(tx, row.id, kit.T0 + timedelta(minutes=1), lease)
    assert outbox.due_deliveries(store.conn, kit.T0 + timedelta(minutes=4)) == []
    assert [d.id for d in outbox.due_deliveries(store.conn, lease)] == [row.id]


def test_an_unexpected_exception_in_a_channel_is_retried_not_raised(store, kit, people,
                                                                    tmp_path, rng, caplog):
    """A sender with a bug. No real channel can be made to raise a non-ChannelError on
    demand, so this one stand-in sender is hand-written."""

    class Buggy:
        name = "hook"

        def send(self, message):
            raise KeyError("A1234563")  # even the message of a bug must not reach the log

        def close(self):
            pass

    s = kit.settings_with(tmp_path, [{"name": "hook", "type": "syslog", "port": 5514}])
    plan_one(store, kit, people, s)
    report = deliver_pending(store, s, kit.T0, senders={"hook": Buggy()}, rng=rng)
    assert report.failed == 1
    (d, _), = outbox.deliveries(store.conn)
    assert d.state == "retrying" and "KeyError" in (d.last_error or "")
    assert "A1234563" not in caplog.text and "A1234563" not in (d.last_error or "")


def test_email_channel_can_be_built_in_python(kit, tmp_path):
    from leaksentry.config.alerts import EmailChannel

    c = EmailChannel(type="email", name="m", host="h", to=["a@b"], from_addr="x@y")
    assert c.from_addr == "x@y" and c.effective_port == 587
