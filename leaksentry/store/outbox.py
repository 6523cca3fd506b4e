"""State store component `outbox` (placeholder: its owner adds tables and functions)."""

from __future__ import annotations

COMPONENT = "outbox"
MIGRATIONS: list[str] = []
