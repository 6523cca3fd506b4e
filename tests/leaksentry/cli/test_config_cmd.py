"""`leaksentry config check` as a user runs it: a real subprocess."""

from __future__ import annotations

import subprocess
import sys


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "leaksentry", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=60)


def test_valid_file(tmp_path):
    cfg = tmp_path / "leaksentry.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path}"\n')
    r = run("config", "check", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout


def test_invalid_file_is_one_line_and_exit_2(tmp_path):
    cfg = tmp_path / "leaksentry.toml"
    cfg.write_text("[state]\nbogus = 1\n")
    r = run("config", "check", "--config", str(cfg))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "state.bogus" in lines[0] and str(cfg) in lines[0]
    assert "Traceback" not in r.stderr


def test_help_explains_itself():
    r = run("--help")
    assert r.returncode == 0
    assert "config" in r.stdout
