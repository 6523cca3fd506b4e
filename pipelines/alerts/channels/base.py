"""What every channel receives and how it fails.

A channel turns one :class:`Outgoing` message into one delivery attempt. It
raises :class:`ChannelError` (retryable or not) and nothing else; the
worker decides about retries. Error messages name the channel and the
failure, never a webhook URL (Slack/Teams URLs are secrets) or content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from leaksentry.errors import LeakSentryError, retryable_status
from leaksentry.store.outbox import LOW_PRIORITY_KINDS


class ChannelError(LeakSentryError):
    """One delivery attempt failed. ``retryable`` errors are retried with backoff (the
    default: a failure is assumed temporary unless the channel knows better)."""

    def __init__(self, message: str, *, retryable: bool = True,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One alert on its way to one channel."""

    alert_id: int
    kind: str  # hit, re-sighting, digest, health, recovery, test
    severity: str
    payload: dict[str, Any]
    #: the same on every attempt, across restarts: receivers de-duplicate on it
    idempotency_key: str
    #: the first alert's key, for re-sightings (email threads, webhook `thread`)
    thread_key: str | None = None

    @property
    def low_priority(self) -> bool:
        return self.kind in LOW_PRIORITY_KINDS


class Channel(Protocol):
    name: str

    def send(self, message: Outgoing) -> None:
        """Deliver or raise ChannelError."""
        ...

    def close(self) -> None: ...


def http_status_error(channel: str, status: int, retry_after: str | None = None) -> ChannelError:
    """An HTTP answer that is not 2xx (retryable as :func:`retryable_status` says)."""
    retryable = retryable_status(status)
    after = None
    if retry_after:
        try:
            after = max(0.0, float(retry_after))
        except ValueError:
            after = None
    kind = "temporary" if retryable else "permanent"
    return ChannelError(f"channel {channel!r}: HTTP {status} ({kind})", retryable=retryable,
                        retry_after=after)
