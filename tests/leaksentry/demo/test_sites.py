"""The demo's loopback sites: Pastebin scraping API simulator, static directory,
and the webhook receiver's signature checks (against the real webhook sender)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx
import pytest

from leaksentry.demo.scenario import Paste
from leaksentry.demo.sites import NOT_FOUND_BODY, PasteFeedSite, StaticSite, WebhookReceiver

PASTES = [Paste("aaaa1111", "old", b"first body", 1000), Paste("bbbb2222", "new", b"second", 2000)]


def test_paste_feed_follows_the_scraping_api() -> None:
    with PasteFeedSite(PASTES) as site:
        base = site.url
        r = httpx.get(f"{site.url}/api_scraping.php?limit=1")
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        items = r.json()
        assert [i["key"] for i in items] == ["bbbb2222"]  # newest first, limit honoured
        assert set(items[0]) == {"scrape_url", "full_url", "date", "key", "size", "expire",
                                 "title", "syntax", "user", "hits"}
        assert items[0]["size"] == "6" and items[0]["date"] == "2000"
        all_items = httpx.get(f"{site.url}/api_scraping.php?limit=50").json()
        assert len(all_items) == 2
        body = httpx.get(all_items[1]["scrape_url"])
        assert body.content == b"first body"
        missing = httpx.get(f"{site.url}/api_scrape_item.php?i=nope")
        assert missing.content == NOT_FOUND_BODY
        assert httpx.get(f"{site.url}/elsewhere").status_code == 404
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/api_scraping.php", timeout=2)


def test_static_site_lists_a_directory(tmp_path) -> None:
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "a.xlsx").write_bytes(b"PK..")
    with StaticSite(tmp_path) as site:
        listing = httpx.get(f"{site.url}/exports/")
        assert listing.status_code == 200
        assert 'href="a.xlsx"' in listing.text
        assert httpx.get(f"{site.url}/exports/a.xlsx").content == b"PK.."


def _post(receiver: WebhookReceiver, body: bytes, *, secret: str | None = None,
          stamp: int | None = None, key: str = "k1") -> httpx.Response:
    stamp_s = str(int(time.time()) if stamp is None else stamp)
    headers = {"Idempotency-Key": key, "X-LeakSentry-Event": "hit",
               "X-LeakSentry-Timestamp": stamp_s, "Content-Type": "application/json"}
    if secret is not None:
        mac = hmac.new(secret.encode(), stamp_s.encode() + b"." + body, hashlib.sha256)
        headers["X-LeakSentry-Signature"] = "sha256=" + mac.hexdigest()
    return httpx.post(receiver.hook_url, content=body, headers=headers)


def test_webhook_receiver_verifies_signatures() -> None:
    body = json.dumps({"id": "a1", "alert": {"severity": "high"}}).encode()
    with WebhookReceiver("s3cret") as rx:
        assert _post(rx, body, secret="s3cret").status_code == 200
        assert _post(rx, body, secret="s3cret").status_code == 200  # a retry: same key
        assert _post(rx, body, secret="wrong", key="k2").status_code == 401
        assert _post(rx, body, key="k3").status_code == 401
        assert _post(rx, body, secret="s3cret", stamp=int(time.time()) - 3600,
                     key="k4").status_code == 401
    reasons = [d.reason for d in rx.deliveries]
    assert reasons == ["", "", "bad signature", "unsigned", "stale timestamp (replay?)"]
    assert [d.idempotency_key for d in rx.unique()] == ["k1"]
    assert rx.duplicates() == 1
    assert rx.unique()[0].body == {"id": "a1", "alert": {"severity": "high"}}


def test_webhook_receiver_accepts_the_real_sender() -> None:
    """The alerts engineer's WebhookSender, unmodified, against the receiver."""
    from leaksentry.config.alerts import WebhookChannel
    from pipelines.alerts.channels.base import Outgoing
    from pipelines.alerts.channels.webhook import WebhookSender

    with WebhookReceiver("topsecret") as rx:
        cfg = WebhookChannel(type="webhook", name="team", url=rx.hook_url, secret="topsecret")
        sender = WebhookSender(cfg)
        sender.send(Outgoing(alert_id=1, kind="hit", severity="high",
                             payload={"severity": "high"}, idempotency_key="abc"))
        sender.close()
    assert [(d.verified, d.idempotency_key, d.event) for d in rx.deliveries] == [
        (True, "abc", "hit")]
