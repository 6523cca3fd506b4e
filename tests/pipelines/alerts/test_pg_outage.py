"""PostgreSQL unreachable (issue 19): the outbox and the Elasticsearch spool keep every
alert and document while the shared store is down, a write that cannot be committed
leaves nothing half-written, and everything is delivered once it is back. Real servers:
PostgreSQL (stopped and started again), a webhook receiver, osmem (the ES API)."""

from __future__ import annotations

import pytest
from fixtures_postgres import PASSWORD

from leaksentry.config import Settings
from leaksentry.store import Store, outbox
from leaksentry.store.failures import unreachable
from pipelines.alerts.worker import deliver_pending
from pipelines.flow import record_finding
from pipelines.sinks.spool import drain, spool_depth


def test_outbox_and_spool_keep_everything_until_postgres_returns(
        tmp_path, postgres_outage, monkeypatch, kit, people, receiver, osmem, rng):
    monkeypatch.setenv("LEAKSENTRY_STATE_PASSWORD", PASSWORD)
    url = postgres_outage.database()
    settings = Settings.model_validate({
        "state": {"dir": str(tmp_path / "state"), "url": url},
        "alerts": {"channels": [{"name": "hook", "type": "webhook", "url": receiver.url,
                                 "secret": kit.SECRET}],
                   "backoff_base": 10, "backoff_max": 600},
        "elasticsearch": {"url": osmem.url, "backend": "opensearch", "initial_backoff": 0.05},
    })
    Store(settings.state, upgrade=True).close()
    store = Store(settings.state)
    for i in range(2):  # two hits: stored, spooled and alerted in one transaction each
        record_finding(store, kit.make_finding(people[4 * i:4 * i + 4],
                                               url=f"https://paste.example/raw/{i}"),
                       settings)
    assert spool_depth(store.conn) >= 2

    postgres_outage.stop()
    with pytest.raises(Exception) as e:  # the daemon's job logs it and runs again later
        deliver_pending(store, settings, rng=rng)
    assert unreachable(e.value)
    with pytest.raises(Exception) as e:
        drain(store, settings)
    assert unreachable(e.value)
    with pytest.raises(Exception) as e:  # a crawl's write: fails whole, nothing half-written
        record_finding(store, kit.make_finding(people[8:12],
                                               url="https://paste.example/raw/2"), settings)
    assert unreachable(e.value)
    assert receiver.requests == []

    postgres_outage.start()
    report = deliver_pending(store, settings, rng=rng)
    assert (report.delivered, report.failed, report.dead) == (2, 0, 0)
    assert len(receiver.requests) == 2 and all(r.verified for r in receiver.requests)
    spooled = spool_depth(store.conn)
    sent = drain(store, settings)
    assert sent.error is None and sent.pending == 0 and sent.delivered == spooled
    assert store.conn.execute("SELECT count(*) FROM hits").fetchone()[0] == 2
    assert outbox.outbox_counts(store.conn)["delivered"] == 2
    store.close()


def test_workers_recording_the_same_hits_at_once_store_and_alert_each_once(
        store, kit, people, tmp_path):
    """Four writers (the workers of a cluster, one connection each) record the same five
    hit documents at the same moment, as a crawl does (``transaction(serial=False)``, a
    hit takes the store's write lock first): each hit is stored once and alerted once,
    the others are re-sightings. On SQLite and on PostgreSQL."""
    import threading

    s = kit.settings_with(tmp_path, [{"name": "hook", "type": "webhook",
                                      "url": "http://127.0.0.1:9/", "secret": kit.SECRET}])
    findings = [kit.make_finding(people[i:i + 2], url=f"https://paste.example/raw/{i}")
                for i in range(5)]
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def work() -> None:
        start.wait()
        try:
            for f in findings:
                with store.transaction(serial=False):
                    record_finding(store, f, s)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.conn.execute("SELECT count(*) FROM hits").fetchone()[0] == 5
    kinds = [r[0] for r in store.conn.execute("SELECT kind FROM alerts")]
    assert kinds.count("hit") == 5 and set(kinds) <= {"hit", "re-sighting"}

