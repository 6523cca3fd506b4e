"""State store component `seen` (placeholder: its owner adds tables and functions)."""

from __future__ import annotations

COMPONENT = "seen"
MIGRATIONS: list[str] = []
