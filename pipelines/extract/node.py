"""Where a piece of content sits: the location prefix its parts get."""

from __future__ import annotations

from dataclasses import dataclass

from leaksentry.redaction import redact_line

#: locations and names are made safe by the one redaction policy: a leaked file may be
#: named after a patient ("A12****(3).csv"), and names end up in locations, messages, the
#: store and alerts
_LONG = 10_000


def safe_name(name: str) -> str:
    """A name for messages and details: one line, identifiers masked, bounded."""
    return redact_line(name, 200) or ""


def mask_name(name: str) -> str:
    """A name (file, member, table, JSON key) through the redaction policy, as one line."""
    return redact_line(name, _LONG) or ""


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
