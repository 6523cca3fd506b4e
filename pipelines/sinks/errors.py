"""Errors of the Elasticsearch/OpenSearch sink (one line, name the URL or index)."""

from __future__ import annotations

from leaksentry.errors import LeakSentryError, retryable_status


class SinkError(LeakSentryError):
    """The cluster refused a request or could not be reached.

    ``status`` is the HTTP status (None when no answer came); ``unreachable``
    says the cluster did not answer at all (or only its gateway did), so spooled
    data must wait. ``retryable``: unreachable, or an answer worth asking again.
    """

    def __init__(self, message: str, *, status: int | None = None,
                 unreachable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.unreachable = unreachable
        self.retryable = unreachable or (status is not None and retryable_status(status))


class UnsupportedFeature(SinkError):
    """The server lacks an API (ILM on OpenSearch, ISM on osmem-server ...)."""
