"""The state store (SQLite, or PostgreSQL with [state] url) and its per-component tables."""

from leaksentry.store.db import Store

__all__ = ["Store"]
