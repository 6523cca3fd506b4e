"""State store component `hits` (placeholder: its owner adds tables and functions)."""

from __future__ import annotations

COMPONENT = "hits"
MIGRATIONS: list[str] = []
