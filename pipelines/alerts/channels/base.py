"""What every channel receives and how it fails.

A channel turns one :class:`Outgoing` message into one delivery attempt. It
raises :class:`ChannelError` (transient or permanent) and nothing else; the
worker decides about retries. Error messages name the channel and the
failure, never a webhook URL (Slack/Teams URLs are secrets) or content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from leaksentry.store.outbox import LOW_PRIORITY_KINDS


class ChannelError(Exception):
    """One delivery attempt failed. ``transient`` errors are retried with backoff."""

    def __init__(self, message: str, *, transient: bool = True,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.transient = transient
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
    """An HTTP answer that is not 2xx: 408/425/429 and 5xx are worth retrying, other 4xx not."""
    transient = status in (408, 425, 429) or status >= 500
    after = None
    if retry_after:
        try:
            after = max(0.0, float(retry_after))
        except ValueError:
            after = None
    kind = "temporary" if transient else "permanent"
    return ChannelError(f"channel {channel!r}: HTTP {status} ({kind})", transient=transient,
                        retry_after=after)
