"""The identifier grammar, in the bottom layer: kinds (patterns, canonical forms),
check characters (HKID, Luhn, mod 11).

One definition used by both the scanner (``pipelines/match``) and the redaction policy
(:mod:`leaksentry.redaction`)::

    kinds = build_kinds(matching_config)     # hkid, hn, configured [[matching.kinds]]
    hkid.is_valid_canonical("A1234563")     # True
"""

from leaksentry.identifiers import checksums, hkid
from leaksentry.identifiers.kinds import Kind, build_kinds

__all__ = ["Kind", "build_kinds", "checksums", "hkid"]
