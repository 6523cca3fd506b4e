"""Shared fixtures. Server fixtures live in tests/fixtures_*.py modules and are
loaded as plugins below, so each area's owner keeps its own file."""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path


class _TestsDirPlugins(importlib.abc.MetaPathFinder):
    """Finds tests/<name>.py for the plugin names below. The importlib import mode does
    not put tests/ on sys.path (and putting it there would let tests/pipelines/ shadow the
    real ``pipelines`` package), so plugin modules are found by name here instead."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names

    def find_spec(self, fullname, path=None, target=None):  # type: ignore[no-untyped-def]
        if fullname in self.names:
            return importlib.util.spec_from_file_location(
                fullname, Path(__file__).with_name(fullname + ".py"))
        return None


def _plugins(*names: str) -> list[str]:
    sys.meta_path.append(_TestsDirPlugins(names))
    return list(names)


pytest_plugins = _plugins("fixtures_osmem", "fixtures_redis", "fixtures_httpdir",
                          "fixtures_files", "fixtures_register", "fixtures_postgres")
