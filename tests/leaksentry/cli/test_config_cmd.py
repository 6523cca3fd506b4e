"""`leaksentry config check` as a user runs it: a real subprocess."""

from __future__ import annotations

import subprocess
import sys

import pytest


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


def test_private_sources_are_warned_about_up_front(tmp_path):
    """Sources the crawler's network guard would refuse at crawl time, named before the
    first crawl: IP literals, localhost, names pinned in [crawler] resolve. A public
    source, and a private one with allow_private = true, get no warning."""
    cfg = tmp_path / "leaksentry.toml"
    cfg.write_text(f'''[state]
dir = "{tmp_path}"

[crawler]
resolve = {{ "intranet.example" = ["10.1.2.3"], "paste.example" = ["93.184.216.34"] }}

[[sources]]
name = "lo"
kind = "watch"
url = "http://127.0.0.1:8000/x.csv"

[[sources]]
name = "intranet"
kind = "directory"
url = "http://intranet.example/exports/"

[[sources]]
name = "named-localhost"
kind = "watch"
urls = ["http://localhost:9/a"]

[[sources]]
name = "public"
kind = "watch"
url = "https://paste.example/raw/1"

[[sources]]
name = "allowed"
kind = "watch"
url = "http://192.168.1.5/y.csv"
allow_private = true
''')
    r = run("config", "check", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 3, r.stderr
    assert ("warning: sources[0] (lo): http://127.0.0.1:8000/x.csv is a loopback address:"
            " the crawler refuses it unless the source sets allow_private = true") in warnings
    assert any("sources[1] (intranet)" in w and "resolves to 10.1.2.3" in w
               and "private address" in w for w in warnings)
    assert any("sources[2] (named-localhost)" in w and "loopback" in w for w in warnings)
    assert not any("public" in w or "allowed" in w for w in warnings)


@pytest.mark.parametrize("field", ["wait_selector", "item_wait_selector"])
def test_wait_selector_without_render_is_an_error(tmp_path, field):
    cfg = tmp_path / "leaksentry.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path}"\n\n[[sources]]\nname = "forum"\n'
                   f'kind = "listing"\nurl = "https://forum.example/"\nlink_css = "a"\n'
                   f'{field} = "div.list"\n')
    r = run("config", "check", "--config", str(cfg))
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert f"sources[0] (forum).{field}: only used when the page is rendered: set render" \
           " = true" in line


def test_telegram_preview_link_must_agree_with_channel(tmp_path):
    cfg = tmp_path / "leaksentry.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path}"\n\n[[sources]]\nname = "tg"\n'
                   'kind = "telegram"\nurl = "https://t.me/s/one"\nchannel = "two"\n')
    r = run("config", "check", "--config", str(cfg))
    assert r.returncode == 2 and "preview of channel 'one' but channel = 'two'" in r.stderr
    cfg.write_text(f'[state]\ndir = "{tmp_path}"\n\n[[sources]]\nname = "tg"\n'
                   'kind = "telegram"\nurl = "https://t.me/s/one"\n')
    assert run("config", "check", "--config", str(cfg)).returncode == 0
