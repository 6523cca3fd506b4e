"""Identifier kinds, keyed digests, the fingerprint file and the scanner.

Contract (other parts rely on it)::

    matcher = Matcher.load(key_path, fingerprints_path, config)   # or Matcher.from_config(cfg)
    result = matcher.scan(parts)        # Iterable[TextPart] -> ScanResult
    mask("hkid", "A1234563")            # "A12****(3)" (leaksentry.redaction.mask)

Nothing here logs, raises or returns a plaintext identifier: results hold
masked forms, keyed digests and register references.

The names below are imported on first use (PEP 562): a command that needs one of them
(the key functions, say) must not load numpy and hyperscan with the scanner. The check
digit and the other identifier rules live in :mod:`leaksentry.identifiers`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from leaksentry.identifiers.kinds import Kind, build_kinds
    from leaksentry.redaction import mask
    from pipelines.match.finder import HAVE_HYPERSCAN
    from pipelines.match.fpfile import FingerprintInfo, FingerprintSet, read_info
    from pipelines.match.keys import generate_key, key_id, read_key
    from pipelines.match.register import BuildReport, build_fingerprints
    from pipelines.match.scanner import Matcher

#: name -> module that defines it
_WHERE = {
    "HAVE_HYPERSCAN": "pipelines.match.finder",
    "FingerprintInfo": "pipelines.match.fpfile", "FingerprintSet": "pipelines.match.fpfile",
    "read_info": "pipelines.match.fpfile",
    "generate_key": "pipelines.match.keys", "key_id": "pipelines.match.keys",
    "read_key": "pipelines.match.keys",
    "Kind": "leaksentry.identifiers.kinds", "build_kinds": "leaksentry.identifiers.kinds",
    "mask": "leaksentry.redaction",
    "BuildReport": "pipelines.match.register", "build_fingerprints": "pipelines.match.register",
    "Matcher": "pipelines.match.scanner",
}

__all__ = [
    "HAVE_HYPERSCAN",
    "BuildReport",
    "FingerprintInfo",
    "FingerprintSet",
    "Kind",
    "Matcher",
    "build_fingerprints",
    "build_kinds",
    "generate_key",
    "key_id",
    "mask",
    "read_info",
    "read_key",
]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(where), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
