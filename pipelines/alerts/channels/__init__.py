"""Alert channels: one module per kind, each a small sender with ``send``/``close``."""

from __future__ import annotations

from leaksentry.config.alerts import (
    EmailChannel,
    SlackChannel,
    SyslogChannel,
    TeamsChannel,
    WebhookChannel,
)
from pipelines.alerts.channels.base import Channel, ChannelError, Outgoing
from pipelines.alerts.channels.email import EmailSender
from pipelines.alerts.channels.slack import SlackSender
from pipelines.alerts.channels.syslog import SyslogSender
from pipelines.alerts.channels.teams import TeamsSender
from pipelines.alerts.channels.webhook import WebhookSender

__all__ = ["Channel", "ChannelError", "Outgoing", "build_channel"]


def build_channel(config: object) -> Channel:
    """The sender for one `[[alerts.channels]]` entry."""
    if isinstance(config, EmailChannel):
        return EmailSender(config)
    if isinstance(config, WebhookChannel):
        return WebhookSender(config)
    if isinstance(config, SlackChannel):
        return SlackSender(config)
    if isinstance(config, TeamsChannel):
        return TeamsSender(config)
    if isinstance(config, SyslogChannel):
        return SyslogSender(config)
    raise TypeError(f"unknown channel config {type(config).__name__}")
