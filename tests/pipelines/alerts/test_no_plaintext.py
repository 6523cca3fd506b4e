"""No plaintext identifier leaves through an alert: planted identifiers (in the
URL, the file name, the match location, a buggy matcher's unmasked values, a
crawler error line) are searched for, in every written form, in every
delivered body and header on every channel and in every log line."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from datetime import timedelta
from email import message_from_bytes, policy

from leaksentry.store.runs import record_run
from pipelines.alerts.health import plan_health_alerts
from pipelines.alerts.planner import plan_alerts
from pipelines.alerts.worker import deliver_pending
from pipelines.model import RunSummary


def fullwidth(s: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) for c in s)


def test_no_identifier_in_any_delivered_byte_or_log_line(
        store, kit, people, tmp_path, receivers, smtp_starttls, syslog_udp, syslog_tcp,
        caplog, monkeypatch, rng):
    caplog.set_level(logging.DEBUG)
    planted = people[:8]
    hook, chat, channels = kit.every_channel(receivers, smtp_starttls, syslog_udp, syslog_tcp)
    monkeypatch.setenv("LEAKSENTRY_SMTP_PASSWORD", "smtp-pass")
    s = kit.settings_with(tmp_path, channels, show_identifiers=50, show_record_refs=50)
    s.kibana.url = "https://kibana.hospital.example"

    a, b, c, d = planted[0].hkid, planted[1].hkid, planted[2].hkid, planted[3].hkid
    hit = kit.make_finding(planted, unmasked=True, sha="11" * 32,
                           url=f"https://paste.example/raw/{a}?q={b[:-1]}%28{b[-1]}%29",
                           filename=f"patients {c[:-1]} ({c[-1]}) {planted[4].hn}.xlsx")
    where = fullwidth(f"{d[:-1]}({d[-1]})")
    hit.result.matches[0] = dataclasses.replace(hit.result.matches[0], where=f"row {where}")
    resight = dataclasses.replace(hit, url=f"https://mirror.example/{a.lower()}.csv",
                                  fetched_at=kit.T0 + timedelta(hours=1))
    low = kit.make_finding(planted[5:8], severity="low", unmasked=True, sha="22" * 32,
                           url=f"https://gist.example/{planted[6].hkid}")
    with store.transaction() as tx:
        plan_alerts(tx, hit, kit.stored(planted, 1), s)
        plan_alerts(tx, resight, kit.stored(planted, 2), s)
        plan_alerts(tx, low, kit.stored(planted[5:8], 3), s)
    for _ in range(3):
        with store.transaction() as tx:
            record_run(tx, RunSummary(source="pastebin", started_at=kit.T0, finished_at=kit.T0,
                                      outcome="error",
                                      error=f"HTTP 500 at https://p.example/{planted[7].hkid}"))
    assert plan_health_alerts(store, s, kit.T0) == 1

    report = deliver_pending(store, s, kit.T0 + timedelta(hours=2), rng=rng)
    # hit + resighting + health on 6 channels, plus one digest per channel
    assert report.dead == 0 and report.failed == 0, report
    assert report.digests == 6 and report.delivered == 4 * 6
    deadline = time.monotonic() + 10  # listener threads may still be reading
    while time.monotonic() < deadline and (
            len(syslog_udp.messages) < 4 or len(syslog_tcp.messages) < 4):
        time.sleep(0.02)
    assert len(syslog_udp.messages) == 4 and len(syslog_tcp.messages) == 4

    texts: list[str] = []
    for q in hook.requests + chat.requests:
        texts.append(q.path)
        texts += [f"{k}: {v}" for k, v in q.headers.items()]
        texts.append(q.body.decode())
        texts.append(json.dumps(q.json(), ensure_ascii=False))
    for raw in smtp_starttls.messages:
        texts.append(raw.decode("utf-8", "replace"))
        msg = message_from_bytes(raw, policy=policy.default)
        texts += [f"{k}: {v}" for k, v in msg.items()]
        texts += [part.get_content() for part in msg.walk() if not part.is_multipart()]
    texts += [m.decode() for m in syslog_udp.messages + syslog_tcp.messages]
    texts += [r.getMessage() for r in caplog.records] + [caplog.text]
    assert len(hook.requests) == 4 and len(smtp_starttls.messages) == 4

    # the search is able to find them: the planted forms are really in the inputs
    inputs = [hit.url, hit.filename, resight.url, low.url, where]
    kit.assert_no_plaintext(texts, planted)
    for p, text in ((planted[0], inputs[0]), (planted[2], inputs[1]), (planted[3], inputs[4])):
        assert p.hkid in kit.flat(text)
    # and the alerts still say what matters
    hit_body = hook.requests[0].json()["alert"]
    assert hit_body["matched_records"] == 8 and "****" in hit_body["url"]
    assert all("*" in i["masked"] for i in hit_body["identifiers"])
