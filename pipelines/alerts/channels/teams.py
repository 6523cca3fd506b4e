"""Microsoft Teams Workflows webhook: one Adaptive Card (render.teams).

The old Office 365 connector "MessageCard" webhooks are retired; a Workflows
"When a Teams webhook request is received" trigger takes this payload and
answers 202 Accepted.
"""

from __future__ import annotations

import json

from leaksentry.config.alerts import TeamsChannel
from pipelines.alerts import render
from pipelines.alerts.channels.base import Outgoing
from pipelines.alerts.channels.http import client, post


class TeamsSender:
    def __init__(self, config: TeamsChannel) -> None:
        self.name = config.name
        self.config = config
        self._http = client(config.timeout, config.ca_file)

    def send(self, message: Outgoing) -> None:
        body = json.dumps(render.teams(message.payload)).encode()
        post(self._http, self.name, self.config.secret_url(), body,
             {"Idempotency-Key": message.idempotency_key})

    def close(self) -> None:
        self._http.close()
