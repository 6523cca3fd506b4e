"""Fixtures for the sink tests: a state store and Settings pointing at a test cluster."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from leaksentry.config import Settings
from leaksentry.store import Store


@pytest.fixture
def store(tmp_path: Path, store_url: str | Path) -> Iterator[Store]:
    """The state store, on SQLite and on PostgreSQL (``store_url``)."""
    from fixtures_postgres import open_store

    s = open_store(store_url, tmp_path)
    yield s
    s.close()


@pytest.fixture
def es_settings(tmp_path: Path) -> Callable[..., Settings]:
    """``es_settings(url, **es)``: Settings with the state in this test's tmp_path and the
    cluster at ``url`` (OpenSearch dialect, bulk retries after 50 ms); ``es`` sets any
    other [elasticsearch] key. A module overrides this fixture for its own defaults."""

    def make(url: str, **es: Any) -> Settings:
        return Settings.model_validate({
            "state": {"dir": str(tmp_path)},
            "elasticsearch": {"url": url, "backend": "opensearch", "initial_backoff": 0.05,
                              **es},
        })

    return make
