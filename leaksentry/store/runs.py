"""State store component `runs` (placeholder: its owner adds tables and functions)."""

from __future__ import annotations

COMPONENT = "runs"
MIGRATIONS: list[str] = []
