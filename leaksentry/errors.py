"""The exception hierarchy. Every message is one line, names the file, field
or URL at fault, and never contains a plaintext identifier."""


class LeakSentryError(Exception):
    """Base class; the CLI prints ``str(exc)`` on one line and exits 2."""

    exit_code = 2


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
