"""Where a piece of content sits: the location prefix its parts get."""

from __future__ import annotations

import re
from dataclasses import dataclass

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_LONG_DIGITS = re.compile(r"[^\s/\\]*\d{6,}[^\s/\\]*")


def safe_name(name: str) -> str:
    """A member or file name for messages and details: one line, identifier-like
    tokens (six or more digits) masked, because a leaked file may be named after one."""
    return _LONG_DIGITS.sub("…", _CONTROL.sub(" ", name))[:200]


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
        return base or "document"

    def at(self, inner: str) -> str:
        """Location of a part inside this content: "Sheet1" or "archive.zip/x.xlsx/Sheet1"."""
        return f"{self.location}/{inner}" if self.location else inner

    def child(self, member: str) -> Node:
        member = _CONTROL.sub(" ", member)
        return Node(f"{self.label}/{member}", member, self.depth + 1)
