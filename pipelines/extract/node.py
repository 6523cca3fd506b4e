"""Where a piece of content sits: the location prefix its parts get."""

from __future__ import annotations

import re
from dataclasses import dataclass

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
# letters then six or more digits: an HKID ("A1234563", "a123456(3)"), a hospital number
# ("HN12345678A"), "MRN-1234567"; dates and version numbers (no letter prefix) stay
_IDLIKE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{1,4}[- ]?\d{6,}(?:\([0-9A-Za-z]\)|[0-9A-Za-z])?")


def _mask(m: re.Match[str]) -> str:
    s = m.group(0)
    return s[:3] + "*" * (len(s) - 3)


def mask_name(name: str) -> str:
    """A file or member name with identifier-shaped tokens masked ("A12*****.csv"): a
    leaked file may be named after a patient, and names end up in locations, messages,
    the store and alerts."""
    return _IDLIKE.sub(_mask, _CONTROL.sub(" ", name))


def safe_name(name: str) -> str:
    """A name for messages and details: one line, masked, bounded."""
    return mask_name(name)[:200]


@dataclass(frozen=True, slots=True)
class Node:
    """``location`` is "" for the document itself, else the container path
    ("archive.zip/export/patients.csv"); ``name`` is used for type detection."""

    location: str
    name: str
    depth: int = 0

    @property
    def label(self) -> str:
        """The text location of this content, and its name in messages."""
        if self.location:
            return self.location
        base = self.name.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
        return mask_name(base) or "document"

    def at(self, inner: str) -> str:
        """Location of a part inside this content: "Sheet1" or "archive.zip/x.xlsx/Sheet1"."""
        return f"{self.location}/{inner}" if self.location else inner

    def child(self, member: str) -> Node:
        """A member: its location is masked, its name (for type detection) is not."""
        return Node(f"{self.label}/{mask_name(member)}", member, self.depth + 1)
