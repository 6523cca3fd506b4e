"""An outbox written before per-alert uids and the re-sighting kind: opened by this
version, its stored re-sightings become low-priority `re-sighting` alerts and its
alerts keep their old keys (a retry in flight stays recognisable)."""

from __future__ import annotations

import json

from leaksentry.store import Store, hits, outbox, runs, seen, spool
from pipelines.alerts.worker import outgoing


def test_old_outbox_is_upgraded_in_place(tmp_path, kit):
    db = tmp_path / "state.db"
    old = [(m.COMPONENT, m.MIGRATIONS[:1] if m is outbox else m.MIGRATIONS)
           for m in (hits, seen, spool, outbox, runs)]
    s = Store(db, migrations=old)
    with s.transaction() as tx:
        tx.execute("INSERT INTO alerts(kind, severity, created_at, payload, thread_id)"
                   " VALUES ('hit', 'critical', '2026-03-01', '{\"kind\": \"hit\"}', NULL)")
        tx.execute("INSERT INTO alerts(kind, severity, created_at, payload, thread_id)"
                   " VALUES ('resighting', 'critical', '2026-03-02', ?, 1)",
                   (json.dumps({"kind": "resighting", "severity": "critical"}),))
    s.close()

    s = Store(db)
    a1, a2 = outbox.get_alert(s.conn, 1), outbox.get_alert(s.conn, 2)
    assert (a2.kind, a2.severity) == ("re-sighting", "low")
    assert a2.payload == {"kind": "re-sighting", "severity": "low", "hit_severity": "critical"}
    assert a1.uid is None and outgoing(a1, "hook").idempotency_key == "leaksentry-alert-1-hook"
    assert outgoing(a2, "hook", a1).thread_key == "leaksentry-alert-1-hook"
    with s.transaction() as tx:
        new = outbox.insert_alert(tx, kind="hit", severity="high", created_at=kit.T0,
                                  payload={})
    assert outbox.get_alert(s.conn, new).uid
    s.close()
