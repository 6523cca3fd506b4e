"""State store component `spool` (placeholder: its owner adds tables and functions)."""

from __future__ import annotations

COMPONENT = "spool"
MIGRATIONS: list[str] = []
