"""Generic JSON webhook, signed so receivers can verify it and reject replays.

Headers: ``X-LeakSentry-Timestamp`` (Unix seconds), ``X-LeakSentry-Signature:
sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>``, ``Idempotency-Key``
(the same on every retry of one alert) and ``X-LeakSentry-Event``. The recipe
for receivers is in docs/alerts.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable

from leaksentry.config.alerts import WebhookChannel
from pipelines.alerts.channels.base import Outgoing
from pipelines.alerts.channels.http import client, post


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def body_of(message: Outgoing) -> bytes:
    doc = {"id": message.idempotency_key, "type": message.kind, "severity": message.severity,
           "thread": message.thread_key, "alert": message.payload}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


class WebhookSender:
    def __init__(self, config: WebhookChannel, clock: Callable[[], float] = time.time) -> None:
        self.name = config.name
        self.config = config
        self._clock = clock
        self._http = client(config.timeout, config.ca_file)

    def send(self, message: Outgoing) -> None:
        body = body_of(message)
        stamp = str(int(self._clock()))
        headers = {**self.config.headers, "Idempotency-Key": message.idempotency_key,
                   "X-LeakSentry-Event": message.kind, "X-LeakSentry-Timestamp": stamp}
        secret = self.config.signing_secret()
        if secret:
            headers["X-LeakSentry-Signature"] = sign(secret, stamp, body)
        post(self._http, self.name, self.config.secret_url(), body, headers)

    def close(self) -> None:
        self._http.close()
