"""Config loading: defaults, one-line errors that name the file and field, secrets from env."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from leaksentry.config import Settings, load_config
from leaksentry.config.base import parse_duration, resolve_secret
from leaksentry.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "leaksentry.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_no_file_means_embedded_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEAKSENTRY_CONFIG", raising=False)
    monkeypatch.setenv("LEAKSENTRY_HOME", str(tmp_path / "home"))
    s = load_config(None)
    assert isinstance(s, Settings)
    assert s.sources == []
    assert s.state.db == tmp_path / "home" / "state.db"
    assert not s.elasticsearch.enabled


def test_env_var_names_the_config_file(tmp_path, monkeypatch):
    p = write(tmp_path, f'[state]\ndir = "{tmp_path / "st"}"\n')
    monkeypatch.setenv("LEAKSENTRY_CONFIG", str(p))
    s = load_config(None)
    assert s.state.dir == tmp_path / "st"
    assert s.path == p


def test_unknown_field_is_named(tmp_path):
    p = write(tmp_path, "[state]\ndirr = 'x'\n")
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    msg = str(ei.value)
    assert str(p) in msg and "state.dirr" in msg and "unknown field" in msg
    assert "Traceback" not in msg


def test_invalid_toml_names_the_file(tmp_path):
    p = write(tmp_path, "[state\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(p)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_source_errors_name_the_source(tmp_path):
    p = write(tmp_path, '[[sources]]\nname = "pastes"\n')
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert "sources[0] (pastes)" in str(ei.value)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30s", 30), ("2m", 120), ("1.5h", 5400), ("7d", 604800), (15, 15), ("250ms", 0.25)],
)
def test_durations(value, seconds):
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["soon", "-1", -5, "2 fortnights", True])
def test_bad_durations(value):
    with pytest.raises(ValueError):
        parse_duration(value)


def test_secret_precedence(monkeypatch):
    monkeypatch.setenv("MY_SECRET", "from-env")
    monkeypatch.setenv("DEFAULT_SECRET", "from-default")
    assert resolve_secret(SecretStr("in-file"), "MY_SECRET", "DEFAULT_SECRET") == "in-file"
    assert resolve_secret(None, "MY_SECRET", "DEFAULT_SECRET") == "from-env"
    assert resolve_secret(None, None, "DEFAULT_SECRET") == "from-default"
    monkeypatch.delenv("DEFAULT_SECRET")
    assert resolve_secret(None, "UNSET_" + os.urandom(4).hex(), "DEFAULT_SECRET") is None


@pytest.mark.parametrize(("table", "expected"), [
    ('kind = "feeds"\nurl = "https://x.example/"',
     "sources[0] (s).kind: Input should be 'feed', 'listing', 'directory', 'bucket',"
     " 'watch' or 'telegram'"),
    ('url = "https://x.example/"', "sources[0] (s).kind: Field required"),
    ('kind = "watch"\nurl = "https://x.example/"\nlink_css = "a"',
     'sources[0] (s).link_css: a field of kind "listing" only (this source is kind "watch")'),
    ('kind = "feed"\nurl = "https://x.example/"\nitems_path = ""\nid_path = "id"\n'
     'raw_url_path = "raw"\nprocesses = 2',
     'sources[0] (s).processes: a field of kinds "directory" and "bucket" only (this source'
     ' is kind "feed")'),
    ('kind = "directory"\nurl = "https://x.example/"\nmax_dept = 2',
     "sources[0] (s).max_dept: unknown field (check the spelling)"),
    ('kind = "directory"\nurl = "https://x.example/"\nmax_depth = -1',
     "sources[0] (s).max_depth: Input should be greater than or equal to 0"),
])
def test_source_kind_errors_are_one_line_naming_the_field(tmp_path, table, expected):
    """A source is the model of its kind: a wrong or missing kind, a field of another kind
    and a typo are each one line naming the field (not the union's internals)."""
    p = write(tmp_path, f'[[sources]]\nname = "s"\n{table}\n')
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert str(ei.value).splitlines() == [f"{p}: {expected}"]
