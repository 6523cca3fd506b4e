"""Identifier kinds, keyed digests, the fingerprint file and the scanner.

Contract (other parts rely on it)::

    matcher = Matcher.load(key_path, fingerprints_path, config)   # or Matcher.from_config(cfg)
    result = matcher.scan(parts)        # Iterable[TextPart] -> ScanResult
    mask("hkid", "A1234563")            # "A12****(3)" (leaksentry.redaction.mask)

Nothing here logs, raises or returns a plaintext identifier: results hold
masked forms, keyed digests and register references.
"""

from leaksentry.identifiers.kinds import Kind, build_kinds
from leaksentry.redaction import mask
from pipelines.match.finder import HAVE_HYPERSCAN
from pipelines.match.fpfile import FingerprintInfo, FingerprintSet, read_info
from pipelines.match.keys import generate_key, key_id, read_key
from pipelines.match.register import BuildReport, build_fingerprints
from pipelines.match.scanner import Matcher

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
