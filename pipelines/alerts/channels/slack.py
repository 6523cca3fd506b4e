"""Slack incoming webhook: `text` fallback plus Block Kit (render.slack)."""

from __future__ import annotations

import json

from leaksentry.config.alerts import SlackChannel
from pipelines.alerts import render
from pipelines.alerts.channels.base import Outgoing
from pipelines.alerts.channels.http import client, post


class SlackSender:
    def __init__(self, config: SlackChannel) -> None:
        self.name = config.name
        self.config = config
        self._http = client(config.timeout, config.ca_file)

    def send(self, message: Outgoing) -> None:
        body = json.dumps(render.slack(message.payload)).encode()
        post(self._http, self.name, self.config.secret_url(), body,
             {"Idempotency-Key": message.idempotency_key})

    def close(self) -> None:
        self._http.close()
