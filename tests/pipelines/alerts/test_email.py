"""Email against a real SMTP server (aiosmtpd, in-process), STARTTLS and
implicit TLS with a self-signed CA the test trusts (trustme)."""

from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes, policy

import pytest

from leaksentry.store import outbox
from pipelines.alerts.channels import ChannelError, Outgoing, build_channel
from pipelines.alerts.channels.email import message_id
from pipelines.alerts.planner import plan_alerts
from pipelines.alerts.worker import deliver_pending


def mail_channel(box, **kw):
    return {"name": "mail", "type": "email", "host": box.host, "port": box.port,
            "from": "leaksentry@hospital.example", "to": ["soc@hospital.example"],
            "ca_file": box.ca_file, **kw}


def parts(raw: bytes) -> tuple[object, str, str]:
    msg = message_from_bytes(raw, policy=policy.default)
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    return msg, text, html


def test_starttls_with_auth_delivers_text_and_html(store, kit, people, tmp_path, smtp_starttls,
                                                   monkeypatch, rng):
    monkeypatch.setenv("SOC_SMTP_PASSWORD", "smtp-pass")
    s = kit.settings_with(tmp_path, [mail_channel(smtp_starttls, security="starttls",
                                                  username="soc",
                                                  password_env="SOC_SMTP_PASSWORD")],
                          show_record_refs=5)
    s.kibana.url = "https://kibana.hospital.example"
    with store.transaction() as tx:
        plan_alerts(tx, kit.make_finding(people[:12]), kit.stored(people[:12]), s)
    report = deliver_pending(store, s, kit.T0, rng=rng)
    assert report.delivered == 1, outbox.deliveries(store.conn)[0][0].last_error
    assert smtp_starttls.logins == ["soc"]
    (raw,) = smtp_starttls.messages
    msg, text, html = parts(raw)
    assert msg["Subject"].startswith("[LeakSentry CRITICAL] 12 register record(s)")
    assert msg["Message-ID"] == message_id(kit.alert_key(store, 1, "mail"))
    assert msg["Idempotency-Key"] == kit.alert_key(store, 1, "mail")
    assert msg["X-Priority"] == "1"
    for body in (text, html):
        assert "pastebin" in body and "export.csv" in body
        assert kit.masked_hkid(people[0].hkid) in body
        assert "leaksentry hits --json" in body  # 12 refs, 5 listed
        assert "kibana.hospital.example/app/discover" in body
    assert "sha256" in text.lower() and str(123_456) not in text  # size shown humanised
    assert "CHAN Ka Ming" not in raw.decode("utf-8", "replace")  # no snippet/content


def test_resighting_threads_under_the_first_alert(store, kit, people, tmp_path, smtp_starttls,
                                                  monkeypatch, rng):
    monkeypatch.setenv("LEAKSENTRY_SMTP_PASSWORD", "smtp-pass")  # the default variable
    s = kit.settings_with(tmp_path, [mail_channel(smtp_starttls, username="soc")])
    with store.transaction() as tx:
        plan_alerts(tx, kit.make_finding(people[:3], sha="aa" * 32), kit.stored(people[:3], 1), s)
        plan_alerts(tx, kit.make_finding(people[:3], sha="aa" * 32, url="https://mirror.example/",
                                         at=kit.T0 + timedelta(hours=1)),
                    kit.stored(people[:3], 2), s)
    assert deliver_pending(store, s, kit.T0 + timedelta(hours=1), rng=rng).delivered == 2
    first, second = (message_from_bytes(m, policy=policy.default)
                     for m in smtp_starttls.messages)
    assert second["In-Reply-To"] == first["Message-ID"]
    assert second["References"] == first["Message-ID"]
    assert second["X-Priority"] == "5" and second["Importance"] == "low"
    assert second["X-LeakSentry-Severity"] == "low"
    assert "re-sighting" in second["Subject"] and "alert 1" in second["Subject"]
    assert "CRITICAL" not in second["Subject"]


def test_implicit_tls(kit, smtp_implicit_tls, tmp_path):
    cfg = kit.settings_with(tmp_path, [
        mail_channel(smtp_implicit_tls, security="tls")]).alerts.channels[0]
    sender = build_channel(cfg)
    sender.send(Outgoing(alert_id=3, kind="test", severity="low",
                         payload={"kind": "test", "message": "hello", "alert_id": 3},
                         idempotency_key="k-3"))
    (raw,) = smtp_implicit_tls.messages
    assert message_id("k-3").encode() in raw and b"Idempotency-Key: k-3" in raw


def test_untrusted_certificate_is_a_permanent_failure(kit, smtp_starttls, tmp_path):
    cfg = kit.settings_with(tmp_path, [mail_channel(smtp_starttls, ca_file=None)])
    sender = build_channel(cfg.alerts.channels[0])
    with pytest.raises(ChannelError) as err:
        sender.send(Outgoing(1, "test", "low", {"kind": "test"}, "k-1"))
    assert not err.value.retryable and "not trusted" in str(err.value)
    assert smtp_starttls.messages == []


def test_wrong_password_is_permanent_and_names_the_channel(kit, smtp_starttls, tmp_path):
    cfg = kit.settings_with(tmp_path, [mail_channel(smtp_starttls, username="soc",
                                                    password="wrong")])
    with pytest.raises(ChannelError) as err:
        build_channel(cfg.alerts.channels[0]).send(Outgoing(1, "test", "low", {}, "k"))
    assert not err.value.retryable and "'mail'" in str(err.value)
    assert "wrong" not in str(err.value)


def test_server_down_is_transient(kit, tmp_path):
    box = type("Box", (), {"host": "127.0.0.1", "port": kit.free_port(), "ca_file": None})
    cfg = kit.settings_with(tmp_path, [mail_channel(box, timeout=5)])
    with pytest.raises(ChannelError) as err:
        build_channel(cfg.alerts.channels[0]).send(Outgoing(1, "test", "low", {}, "k"))
    assert err.value.retryable
