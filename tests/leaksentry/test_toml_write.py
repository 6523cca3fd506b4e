"""The small TOML writer round-trips through tomllib and the config loader."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from leaksentry.config import Settings
from leaksentry.config.toml import dumps, table, value


def test_round_trip_through_tomllib_and_settings(tmp_path):
    doc = {
        "state": {"dir": tmp_path / "st"},
        "crawler": {"resolve": {"paste.example": ["127.0.0.1"]}, "concurrency": 2},
        "sources": [
            {"name": "p", "kind": "watch", "urls": ["http://127.0.0.1:1/x"], "every": "1m",
             "allow_private": True, "headers": {"X-Test": 'quote " and 漢字'}, "jitter": None},
        ],
        "alerts": {},
    }
    text = dumps(doc)
    data = tomllib.loads(text)
    assert data["sources"][0]["headers"]["X-Test"] == 'quote " and 漢字'
    assert "jitter" not in data["sources"][0]
    s = Settings.model_validate(data)
    assert s.state.dir == Path(tmp_path / "st")
    assert s.source("p").every == 60


def test_values_and_errors():
    assert value(True) == "true" and value(1.5) == "1.5" and value((1, 2)) == "[1, 2]"
    assert table("[[x]]", {"a": 1}) == "[[x]]\na = 1\n"
    with pytest.raises(TypeError):
        value(object())
    with pytest.raises(TypeError, match="top-level"):
        dumps({"x": 1})
