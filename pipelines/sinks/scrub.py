"""Defence in depth: mask HKID-shaped strings in free text before it leaves.

The matcher already masks what it found, but URLs, file names, archive member
names, error messages and snippets are written by strangers: an upload named
``A1234563.pdf`` must not put an identifier into SQLite or Elasticsearch.
This masks every HKID-shaped token with a valid check character, in any
written form (brackets, spaces, lower case, full-width), as ``A12****(3)``.
"""

from __future__ import annotations

import re
import unicodedata

from leaksentry.identifiers.hkid import is_valid_canonical

_HKID = re.compile(
    r"(?<![A-Za-z0-9])([A-Za-z]{1,2})[ ]?(\d{6})[ ]?"
    r"(?:\(\s?([0-9Aa])\s?\)|([0-9Aa]))(?![A-Za-z0-9])"
)


def mask_canonical(canonical: str) -> str:
    """``A1234563`` -> ``A12****(3)``."""
    return f"{canonical[:3]}****({canonical[-1]})"


def _replace(m: re.Match[str]) -> str:
    canonical = (m.group(1) + m.group(2) + (m.group(3) or m.group(4))).upper()
    return mask_canonical(canonical) if is_valid_canonical(canonical) else m.group(0)


_SIX_DIGITS = re.compile(r"\d{6}")


def scrub(text: str | None) -> str | None:
    """``text`` with every valid HKID-shaped token masked (NFKC-normalised when needed)."""
    if not text:
        return text
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    if _SIX_DIGITS.search(text) is None:  # the common case: nothing HKID-shaped
        return text
    return _HKID.sub(_replace, text)
