"""The config snapshot crawls run: written as validated, refused when it differs."""

from __future__ import annotations

import hashlib
import subprocess

import pytest

from leaksentry.config import read_config
from leaksentry.errors import ConfigError
from scheduler.crawls import crawl_command
from scheduler.snapshot import write_snapshot

CFG = b'[[sources]]\nname = "s"\nkind = "watch"\nurl = "https://example.org/"\n'


def test_snapshot_is_the_validated_bytes_private_and_pruned(tmp_path):
    first = write_snapshot(tmp_path, CFG)
    assert first.path.read_bytes() == CFG and first.path.stat().st_mode & 0o777 == 0o600
    assert first.sha256 == hashlib.sha256(CFG).hexdigest()
    assert (tmp_path / "config").stat().st_mode & 0o777 == 0o700
    second = write_snapshot(tmp_path, CFG + b"\n", keep=first)
    third = write_snapshot(tmp_path, CFG + b"\n\n", keep=second)
    # the current one and the one crawls started just before may still be opening
    assert sorted(p.name for p in (tmp_path / "config").iterdir()) == sorted(
        [second.path.name, third.path.name])
    settings, raw = read_config(third.path, sha256=third.sha256)
    assert raw == CFG + b"\n\n" and settings.sources[0].name == "s"


def test_a_snapshot_whose_hash_differs_is_refused(tmp_path):
    snap = write_snapshot(tmp_path, CFG)
    snap.path.write_bytes(CFG.replace(b"example.org", b"example.net"))
    with pytest.raises(ConfigError, match="changed after it was validated"):
        read_config(snap.path, sha256=snap.sha256)
    # the crawl command says so in one line and exits 2, before crawling anything
    cmd = crawl_command("s", snap.path, config_sha256=snap.sha256)
    assert cmd[-4:] == ["--config", str(snap.path), "--config-sha256", snap.sha256]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 2 and "changed after it was validated" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
