"""The exception hierarchy. Every message is one line, names the file, field
or URL at fault, and never contains a plaintext identifier.

Every error the project raises on purpose is a :class:`LeakSentryError`; the
CLI prints it on one line and exits 2. Classes that belong to one component
live beside it (shown in brackets) and derive from the tree here::

    LeakSentryError                 exit_code = 2, retryable = False
    ├── ConfigError                 the config file is missing or invalid
    ├── KeyFileError
    ├── FingerprintFileError
    ├── RegisterError
    ├── InputError
    ├── StoreError
    ├── SinkError                   [pipelines.sinks.errors] status, unreachable;
    │   │                           retryable when the cluster did not answer or was busy
    │   └── UnsupportedFeature      the server lacks an API (ILM on OpenSearch ...)
    ├── EvidenceError               [pipelines.sinks.vault]
    ├── ChannelError                [pipelines.alerts.channels.base] one delivery attempt;
    │                               retryable per attempt, retry_after
    ├── NotifyError                 [pipelines.notify]
    ├── AlertDeliveryError          [leaksentry.cli.alerts] a test alert not delivered
    ├── KibanaError                 [kibana.install]
    ├── DaemonError                 [scheduler.daemon]
    └── WorkerError                 [scheduler.cluster.worker] a cluster worker cannot start

Worth retrying is said ONE way: the ``retryable`` attribute (a class default,
set per instance where the answer decides), and, for HTTP answers,
:func:`retryable_status`.

Internal signals stay outside the tree on purpose, so that an ``except
LeakSentryError`` never swallows them; none leaves its module:
``pipelines.extract.state.Stop``/``Failed`` (extraction control flow),
``pipelines.process._Timeout``/``_Died`` (a scan worker's fate),
``pipelines.localfile.NotRead`` (a local input given a status instead of being read) and
``crawler.spiders.bucket.NotAListing`` (a body that is not a bucket listing).
"""


class LeakSentryError(Exception):
    """Base class; the CLI prints ``str(exc)`` on one line and exits 2."""

    exit_code = 2
    #: the same request may succeed later (a server down, busy or slow): worth retrying
    retryable: bool = False


def retryable_status(status: int) -> bool:
    """HTTP answers worth retrying: 408 (timeout), 425 (too early), 429 (too many
    requests) and every 5xx; other statuses will not change by asking again."""
    return status in (408, 425, 429) or status >= 500


class ConfigError(LeakSentryError):
    """The configuration file is missing, unreadable or invalid."""


class KeyFileError(LeakSentryError):
    """A key file is missing, malformed, too widely readable, or the wrong key."""


class FingerprintFileError(LeakSentryError):
    """A fingerprint file is missing, truncated, tampered with or of another version."""


class RegisterError(LeakSentryError):
    """The register (CSV/XLSX) cannot be read or lacks a requested column."""


class InputError(LeakSentryError):
    """An input path cannot be read."""


class StoreError(LeakSentryError):
    """The SQLite state store cannot be opened or migrated."""
