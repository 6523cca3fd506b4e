"""Slack, Teams and syslog against real local listeners; payload shapes."""

from __future__ import annotations

import re

import pytest

from leaksentry.redaction import redact as scrub
from pipelines.alerts import render
from pipelines.alerts.channels import ChannelError, Outgoing, build_channel
from pipelines.alerts.content import hit_payload, kibana_link
from pipelines.alerts.worker import outgoing


@pytest.fixture
def plain_receiver(kit, receivers):
    r = kit.start_receiver(kit.Receiver(secret=None))
    receivers.append(r)
    return r


def message(kit, people, tmp_path, **kw):
    s = kit.settings_with(tmp_path)
    s.kibana.url = "https://kibana.example/"
    p = hit_payload(kit.make_finding(people[:3], **kw), kit.stored(people[:3]), s)
    return Outgoing(alert_id=7, kind="hit", severity=p["severity"], payload={**p, "alert_id": 7},
                    idempotency_key="leaksentry-alert-7-x")


def test_slack_incoming_webhook(kit, people, tmp_path, plain_receiver, monkeypatch):
    monkeypatch.setenv("SLACK_URL", plain_receiver.url)
    cfg = kit.settings_with(tmp_path, [{"name": "slack", "type": "slack",
                                        "url_env": "SLACK_URL"}]).alerts.channels[0]
    build_channel(cfg).send(message(kit, people, tmp_path))
    body = plain_receiver.requests[0].json()
    assert body["text"].startswith("[LeakSentry CRITICAL] 3 register record(s)")
    assert body["blocks"][0]["type"] == "header"
    # Slack must not fetch the leak's URL from its servers to build a preview
    assert body["unfurl_links"] is False and body["unfurl_media"] is False
    (att,) = body["attachments"]
    assert att["color"] == render.SLACK_COLOUR["critical"]
    fields = [f["text"] for b in att["blocks"] for f in b.get("fields", [])]
    assert all(len(b.get("fields", [])) <= 10 for b in att["blocks"])
    # masked identifiers: their stars would turn text bold; look-alikes show instead
    masked = kit.masked_hkid(people[0].hkid)
    assert any(render.mrkdwn_escape(masked) in f for f in fields)
    assert not any(masked in f for f in fields)
    assert any("<https://kibana.example/app/discover" in f and "|Open in Kibana>" in f
               for f in fields)


def test_teams_workflow_adaptive_card(kit, people, tmp_path, receivers):
    r = kit.start_receiver(kit.Receiver(secret=None, default_status=202))
    receivers.append(r)
    cfg = kit.settings_with(tmp_path, [{"name": "teams", "type": "teams",
                                        "url": r.url}]).alerts.channels[0]
    build_channel(cfg).send(message(kit, people, tmp_path))
    body = r.requests[0].json()
    (att,) = body["attachments"]
    assert body["type"] == "message"
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = att["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    facts = {f["title"]: f["value"] for f in card["body"][1]["facts"]}
    assert facts["Matched records"] == "3" and facts["Source"] == "pastebin"
    assert card["actions"][0]["url"].startswith("https://kibana.example/app/discover")


def test_http_channel_errors_never_show_the_secret_url(kit, tmp_path, receivers):
    r = kit.start_receiver(kit.Receiver(secret=None, default_status=404))
    receivers.append(r)
    url = r.url + "/T000/B000/secret-token"
    cfg = kit.settings_with(tmp_path, [{"name": "s", "type": "slack",
                                        "url": url}]).alerts.channels[0]
    with pytest.raises(ChannelError) as err:
        build_channel(cfg).send(Outgoing(1, "test", "low", {"kind": "test"}, "k"))
    assert not err.value.retryable and "secret-token" not in str(err.value)


def test_missing_url_env_is_a_config_error_naming_the_variable(kit, tmp_path, monkeypatch):
    monkeypatch.delenv("NOPE_URL", raising=False)
    cfg = kit.settings_with(tmp_path, [{"name": "s", "type": "slack",
                                        "url_env": "NOPE_URL"}]).alerts.channels[0]
    with pytest.raises(Exception, match="NOPE_URL"):
        cfg.secret_url()


RFC5424 = re.compile(
    rb"^<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<proc>\S+) (?P<msgid>\S+)"
    rb" (?P<sd>\[leaksentry@32473(?: [a-z0-9_]+=\"(?:[^\"\\\]]|\\.)*\")+\]) (?P<msg>.+)$", re.S)


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_syslog_rfc5424(kit, people, tmp_path, proto, request):
    sink = request.getfixturevalue(f"syslog_{proto}")
    cfg = kit.settings_with(tmp_path, [{"name": "siem", "type": "syslog", "host": "127.0.0.1",
                                        "port": sink.port, "protocol": proto}]).alerts.channels[0]
    build_channel(cfg).send(message(kit, people, tmp_path, url='https://x.example/a"b]c'))
    assert sink.got.wait(5)
    (data,) = sink.messages
    m = RFC5424.match(data)
    assert m, data
    assert int(m["pri"]) == 4 * 8 + 2  # facility security/auth, severity critical
    assert m["app"] == b"leaksentry" and m["msgid"] == b"HIT"
    assert b'id="leaksentry-alert-7-x"' in m["sd"] and b'matched_records="3"' in m["sd"]
    assert b'url="https://x.example/a\\"b\\]c"' in m["sd"]  # escaped per RFC 5424 6.3.3
    assert m["ts"].endswith(b"Z")


def test_kibana_link_filters_on_the_sha256(kit, tmp_path):
    s = kit.settings_with(tmp_path)
    assert kibana_link(s, "ab" * 32) is None
    s.kibana.url = "https://kibana.example:5601/"
    link = kibana_link(s, "ab" * 32)
    assert link.startswith("https://kibana.example:5601/app/discover#/")
    assert "file.hash.sha256" in link and "ab" * 32 in link


def test_scrub_masks_identifiers_in_urls_and_names(people):
    h = people[0].hkid
    body, check = h[:-1], h[-1]
    full = "".join(chr(ord(c) + 0xFEE0) for c in f"{body}({check})")
    for text in (f"https://x.example/{h}.csv", f"https://x.example/{body}%28{check}%29",
                 f"list {body} ({check}).xlsx", f"name {full}.pdf", f"{people[0].hn}.txt"):
        out = scrub(text)
        assert h not in out.upper().replace("(", "").replace(")", "").replace(" ", "")
        assert people[0].hn not in out
        assert "****" in out
    assert scrub("https://paste.example/raw/AB12CD") == "https://paste.example/raw/AB12CD"


def test_outgoing_threads_resightings_per_channel(kit, people, tmp_path):
    from leaksentry.store.outbox import Alert

    root = Alert(2, "hit", "high", "s", None, None, 1, None, kit.T0, {}, uid="u-root")
    a = Alert(5, "re-sighting", "low", "s", None, None, 1, 2, kit.T0, {}, uid="u-five")
    o = outgoing(a, "mail", root)
    assert o.idempotency_key == "leaksentry-u-five-mail"
    assert o.thread_key == "leaksentry-u-root-mail" and o.low_priority
    # an alert written before uids existed keeps its old key (a retry stays recognisable)
    old = Alert(5, "hit", "high", "s", None, None, 1, None, kit.T0, {})
    assert outgoing(old, "mail").idempotency_key == "leaksentry-alert-5-mail"
