"""What real receivers get: a re-sighting is low priority on every channel (never a
second critical page); keys unique across installations; Slack without unfurling and
with escaped mrkdwn; syslog over TLS (RFC 5425, with and without a client
certificate) and with newline framing."""

from __future__ import annotations

import contextlib
import json
import re
import time
from datetime import timedelta
from email import message_from_bytes, policy

import pytest

from leaksentry.config import Settings
from leaksentry.store import Store, outbox
from pipelines.alerts import render
from pipelines.alerts.channels import ChannelError, Outgoing, build_channel
from pipelines.alerts.planner import plan_alerts
from pipelines.alerts.worker import deliver_pending

SD = re.compile(rb'\[leaksentry@32473((?: [a-z0-9_]+="(?:[^"\\\]]|\\.)*")+)\]')


def sd_params(data: bytes) -> dict[str, str]:
    m = SD.search(data)
    assert m, data
    return {k.decode(): v.decode() for k, v in re.findall(rb' ([a-z0-9_]+)="((?:[^"\\\]]|\\.)*)"',
                                                             m[1])}


def pri_level(data: bytes) -> int:
    return int(re.match(rb"<(\d+)>", data)[1]) % 8


def wait_messages(sink, n: int) -> list[bytes]:
    deadline = time.monotonic() + 10  # listener threads may still be reading
    while time.monotonic() < deadline and len(sink.messages) < n:
        time.sleep(0.02)
    assert len(sink.messages) == n, sink.messages
    return sink.messages


def test_resighting_is_low_priority_on_every_channel(
        store, kit, people, tmp_path, receivers, smtp_starttls, syslog_udp, syslog_tls,
        monkeypatch, rng):
    hook = kit.start_receiver(kit.Receiver())
    chat = kit.start_receiver(kit.Receiver(secret=None))
    receivers += [hook, chat]
    monkeypatch.setenv("LEAKSENTRY_SMTP_PASSWORD", "smtp-pass")
    s = kit.settings_with(tmp_path, [
        {"name": "hook", "type": "webhook", "url": hook.url, "secret": kit.SECRET},
        {"name": "slack", "type": "slack", "url": chat.url + "/slack"},
        {"name": "teams", "type": "teams", "url": chat.url + "/teams"},
        {"name": "mail", "type": "email", "host": "127.0.0.1", "port": smtp_starttls.port,
         "username": "soc", "to": ["soc@hospital.example"], "ca_file": smtp_starttls.ca_file},
        {"name": "siem-udp", "type": "syslog", "port": syslog_udp.port},
        {"name": "siem-tls", "type": "syslog", "port": syslog_tls.port, "protocol": "tls",
         "ca_file": smtp_starttls.ca_file},
    ])
    hit = kit.make_finding(people[:4], severity="critical", sha="31" * 32)
    again = kit.make_finding(people[:4], severity="critical", sha="31" * 32,
                             url="https://mirror.example/x", at=kit.T0 + timedelta(hours=1))
    with store.transaction() as tx:
        plan_alerts(tx, hit, kit.stored(people[:4], 1), s)
        plan_alerts(tx, again, kit.stored(people[:4], 2), s)
    report = deliver_pending(store, s, kit.T0 + timedelta(hours=1), rng=rng)
    assert report.delivered == 12 and report.dead == 0, report

    # webhook: type and severity of the envelope and of the alert
    first, second = (q.json() for q in hook.requests)
    assert (first["type"], first["severity"]) == ("hit", "critical")
    assert (second["type"], second["severity"]) == ("re-sighting", "low")
    assert second["alert"]["kind"] == "re-sighting" and second["alert"]["severity"] == "low"
    assert second["alert"]["hit_severity"] == "critical"
    assert hook.requests[1].headers["x-leaksentry-event"] == "re-sighting"
    # Slack: the Severity field and the colour bar
    slack = [q.json() for q in chat.requests if q.path.endswith("/slack")]
    colours = [m["attachments"][0]["color"] for m in slack]
    assert colours == [render.SLACK_COLOUR["critical"], render.SLACK_COLOUR["low"]]
    fields = [f["text"] for b in slack[1]["attachments"][0]["blocks"]
              for f in b.get("fields", [])]
    assert "*Severity*\nlow" in fields
    # Teams: the Severity fact and the title's colour
    teams = [q.json()["attachments"][0]["content"] for q in chat.requests
             if q.path.endswith("/teams")]
    assert [c["body"][0]["color"] for c in teams] == ["Attention", "Default"]
    assert {f["title"]: f["value"] for f in teams[1]["body"][1]["facts"]}["Severity"] == "low"
    # e-mail: lowest priority, a subject that does not say critical
    mails = [message_from_bytes(m, policy=policy.default) for m in smtp_starttls.messages]
    assert [m["X-Priority"] for m in mails] == ["1", "5"]
    assert mails[1]["X-LeakSentry-Severity"] == "low" and mails[1]["Importance"] == "low"
    assert "CRITICAL" in mails[0]["Subject"] and "CRITICAL" not in mails[1]["Subject"]
    assert "re-sighting" in mails[1]["Subject"]
    # syslog (UDP and TLS): SD severity/type and the PRI's severity (2 crit, 5 notice)
    for sink in (syslog_udp, syslog_tls):
        crit, notice = wait_messages(sink, 2)
        assert sd_params(crit)["severity"] == "critical" and pri_level(crit) == 2
        p = sd_params(notice)
        assert (p["severity"], p["type"]) == ("low", "re-sighting") and pri_level(notice) == 5
    # the outbox says so too (`alerts list`)
    kinds = sorted((a.kind, a.severity) for _, a in outbox.deliveries(store.conn, limit=20))
    assert set(kinds) == {("hit", "critical"), ("re-sighting", "low")}


def test_keys_and_message_ids_differ_between_installations(kit, people, tmp_path, rng,
                                                           receivers, smtp_starttls,
                                                           monkeypatch):
    """Two state dirs (a reinstall, a second deployment) both have an alert 1: their
    idempotency keys and Message-IDs differ, so a receiver (or Gmail) that saw the
    first never drops the second as a duplicate."""
    hook = kit.start_receiver(kit.Receiver())
    receivers.append(hook)
    monkeypatch.setenv("LEAKSENTRY_SMTP_PASSWORD", "smtp-pass")
    keys, ids = [], []
    for n in (1, 2):
        s = kit.settings_with(tmp_path / f"install{n}", [
            {"name": "hook", "type": "webhook", "url": hook.url, "secret": kit.SECRET},
            {"name": "mail", "type": "email", "host": "127.0.0.1", "port": smtp_starttls.port,
             "username": "soc", "to": ["soc@hospital.example"],
             "ca_file": smtp_starttls.ca_file}])
        store = Store(s.state.db)
        with store.transaction() as tx:
            plan_alerts(tx, kit.make_finding(people[:2]), kit.stored(people[:2]), s)
        assert deliver_pending(store, s, kit.T0, rng=rng).delivered == 2
        (alert_id,) = {a.id for _, a in outbox.deliveries(store.conn)}
        assert alert_id == 1
        keys.append(kit.alert_key(store, 1, "hook"))
        store.close()
    assert keys[0] != keys[1]
    assert [q.headers["idempotency-key"] for q in hook.requests] == keys
    assert hook.processed == keys  # the receiver acted on both
    ids = [message_from_bytes(m, policy=policy.default)["Message-ID"]
           for m in smtp_starttls.messages]
    assert len(ids) == 2 and ids[0] != ids[1]


def test_slack_escapes_mrkdwn_in_stranger_text_and_masked_identifiers(kit, people, tmp_path,
                                                                      receivers):
    chat = kit.start_receiver(kit.Receiver(secret=None))
    receivers.append(chat)
    s = kit.settings_with(tmp_path, [{"name": "slack", "type": "slack", "url": chat.url}])
    hostile = kit.make_finding(
        people[:2], url="https://x.example/<!channel>?a=1&b=<https://evil.example|click>",
        filename="*urgent* _read_ ~now~ `x` ward_list.csv")
    payload = {**render_payload(kit, hostile, people, s), "alert_id": 9}
    build_channel(s.alerts.channels[0]).send(
        Outgoing(9, "hit", "critical", payload, "leaksentry-k-slack"))
    body = chat.requests[0].json()
    assert body["unfurl_links"] is False and body["unfurl_media"] is False
    mrkdwn = [body["text"]] + [f["text"] for b in body["attachments"][0]["blocks"]
                               for f in b.get("fields", [])]
    flat = "\n".join(mrkdwn)
    # nothing a stranger wrote can become a link, a mention or formatting
    assert "<!channel>" not in flat and "<https://evil" not in flat and "&lt;!channel&gt;" in flat
    assert "&amp;b=" in flat
    file_field = next(t for t in mrkdwn if t.startswith("*File*"))
    value = file_field.split("\n", 1)[1]
    assert not re.search(r"(^|\W)[*_~`]\S", value) and not re.search(r"\S[*_~`](\W|$)", value)
    assert "ward_list.csv" in value  # an underscore inside a word formats nothing: kept
    ident = next(t for t in mrkdwn if t.startswith("*Identifiers"))
    assert "*" not in ident.split("\n", 1)[1] and "\u2217\u2217\u2217\u2217" in ident
    # the header is plain text: shown as is
    assert body["blocks"][0]["text"]["type"] == "plain_text"


def render_payload(kit, finding, people, s: Settings) -> dict:
    from pipelines.alerts.content import hit_payload

    return hit_payload(finding, kit.stored(people[:2]), s)


def message(kit, people, tmp_path) -> Outgoing:
    s = kit.settings_with(tmp_path)
    p = render_payload(kit, kit.make_finding(people[:3]), people, s)
    return Outgoing(7, "hit", p["severity"], {**p, "alert_id": 7}, "leaksentry-u7-siem")


def test_syslog_over_tls_rfc5425(kit, people, tmp_path, syslog_tls, tls_ca):
    cfg = kit.settings_with(tmp_path, [
        {"name": "siem", "type": "syslog", "host": "127.0.0.1", "port": syslog_tls.port,
         "protocol": "tls", "ca_file": tls_ca[1]}]).alerts.channels[0]
    build_channel(cfg).send(message(kit, people, tmp_path))
    (data,) = wait_messages(syslog_tls, 1)  # octet-counted inside TLS
    assert data.startswith(b"<34>1 ") and sd_params(data)["id"] == "leaksentry-u7-siem"


def test_syslog_tls_untrusted_server_is_a_permanent_failure(kit, people, tmp_path,
                                                            syslog_tls):
    cfg = kit.settings_with(tmp_path, [
        {"name": "siem", "type": "syslog", "host": "127.0.0.1", "port": syslog_tls.port,
         "protocol": "tls"}]).alerts.channels[0]  # the system store: trustme's CA unknown
    with pytest.raises(ChannelError) as err:
        build_channel(cfg).send(message(kit, people, tmp_path))
    assert not err.value.retryable and "not trusted" in str(err.value)
    assert syslog_tls.messages == []


def test_syslog_tls_with_a_client_certificate(kit, people, tmp_path, syslog_mtls, tls_ca):
    ca, ca_file = tls_ca
    client = ca.issue_cert("leaksentry.hospital.example")
    cert = tmp_path / "client.pem"
    client.private_key_and_cert_chain_pem.write_to_path(str(cert))
    base = {"name": "siem", "type": "syslog", "host": "127.0.0.1", "port": syslog_mtls.port,
            "protocol": "tls", "ca_file": ca_file}
    # without the client certificate the collector refuses the handshake (with TLS 1.3
    # the client may learn it only after sending: syslog is one-way)
    cfg = kit.settings_with(tmp_path, [base]).alerts.channels[0]
    with contextlib.suppress(ChannelError):
        build_channel(cfg).send(message(kit, people, tmp_path))
    deadline = time.monotonic() + 10
    while not syslog_mtls.errors and time.monotonic() < deadline:
        time.sleep(0.02)
    assert syslog_mtls.errors and syslog_mtls.messages == []
    cfg = kit.settings_with(tmp_path, [{**base, "client_cert": str(cert)}]).alerts.channels[0]
    build_channel(cfg).send(message(kit, people, tmp_path))
    (data,) = wait_messages(syslog_mtls, 1)
    assert b"leaksentry-u7-siem" in data
    (peer,) = syslog_mtls.peer_certs
    assert "leaksentry.hospital.example" in json.dumps(peer)


def test_syslog_newline_framing(kit, people, tmp_path, syslog_tcp_lines):
    cfg = kit.settings_with(tmp_path, [
        {"name": "siem", "type": "syslog", "port": syslog_tcp_lines.port, "protocol": "tcp",
         "framing": "non-transparent"}]).alerts.channels[0]
    sender = build_channel(cfg)
    m = message(kit, people, tmp_path)
    sender.send(m)
    # a line break in stranger text must not split the record
    sender.send(Outgoing(8, "hit", "high", {**m.payload, "alert_id": 8,
                                            "url": "https://x.example/a\nb"},
                         "leaksentry-u8-siem"))
    one, two = wait_messages(syslog_tcp_lines, 2)
    assert one.startswith(b"<34>1 ") and not one[:8].split(b" ")[0].isdigit()
    assert sd_params(one)["id"] == "leaksentry-u7-siem"
    assert sd_params(two)["id"] == "leaksentry-u8-siem" and b"\n" not in two


@pytest.mark.parametrize("bad, why", [
    ({"protocol": "udp", "framing": "non-transparent"}, "framing"),
    ({"protocol": "tcp", "ca_file": "/x.pem"}, "only for protocol"),
    ({"protocol": "tls", "client_key": "/k.pem"}, "client_key without client_cert"),
])
def test_syslog_options_that_do_not_fit_are_refused(kit, tmp_path, bad, why):
    with pytest.raises(Exception, match=why):
        kit.settings_with(tmp_path, [{"name": "siem", "type": "syslog", **bad}])


def test_syslog_default_ports(kit, tmp_path):
    chans = kit.settings_with(tmp_path, [
        {"name": "a", "type": "syslog", "protocol": "tls"},
        {"name": "b", "type": "syslog", "protocol": "tcp"}]).alerts.channels
    assert [c.effective_port for c in chans] == [6514, 514]
