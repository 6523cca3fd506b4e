"""The SQLite state store and its per-component tables."""

from leaksentry.store.db import Store

__all__ = ["Store"]
