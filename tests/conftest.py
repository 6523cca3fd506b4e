"""Shared fixtures. Server fixtures live in tests/fixtures_*.py modules and are
loaded as plugins below, so each area's owner keeps its own file."""

from __future__ import annotations
