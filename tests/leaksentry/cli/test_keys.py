"""`leaksentry keygen` as a user runs it: a real subprocess."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "leaksentry", *args], capture_output=True,
                          text=True, timeout=60)


def test_keygen_writes_a_private_key_and_never_overwrites(tmp_path: Path) -> None:
    key = tmp_path / "key"
    r = run("keygen", "--out", str(key))
    assert r.returncode == 0, r.stderr
    assert "key id" in r.stdout
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32
    before = key.read_bytes()
    r = run("keygen", "--out", str(key))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and str(key) in r.stderr
    assert "overwrite" in r.stderr and "Traceback" not in r.stderr
    assert key.read_bytes() == before


def test_keygen_into_missing_directory(tmp_path: Path) -> None:
    r = run("keygen", "--out", str(tmp_path / "nope" / "key"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert str(tmp_path / "nope" / "key") in r.stderr


def test_readable_key_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "key"
    assert run("keygen", "--out", str(key)).returncode == 0
    os.chmod(key, 0o644)
    (tmp_path / "reg.csv").write_text("hkid\nA1234563\n")
    r = run("fingerprints", "build", "--key", str(key), "--out", str(tmp_path / "fp"),
            str(tmp_path / "reg.csv"))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(key) in lines[0] and "chmod 600" in lines[0]
    assert not (tmp_path / "fp").exists()
