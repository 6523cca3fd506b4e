"""`config check` and secrets written into the file (issue 20, item 6): a warning per
secret (named, never shown), and exit 2 when the file is readable by group or others.
Real subprocesses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SECRET_CONFIG = """
[state]
dir = "{state}"

[elasticsearch]
api_key = "es-file-secret-1"

[[alerts.channels]]
name = "mail"
type = "email"
host = "127.0.0.1"
to = ["soc@example.org"]
password = "smtp-file-secret-2"

[[alerts.channels]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:9/hook"
secret_env = "HOOK_SECRET"
headers = {{ "X-Api-Key" = "hook-file-secret-3", "X-Team" = "soc" }}

[[sources]]
name = "api"
kind = "watch"
url = "https://paste.example/x"
headers = {{ Authorization = "Bearer src-file-secret-4", "User-Agent" = "x" }}
"""


def run(cfg: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "leaksentry", "config", "check", "--config",
                           str(cfg)], capture_output=True, text=True, timeout=60)


def test_secrets_in_the_file_are_warned_and_refused_when_readable(tmp_path: Path) -> None:
    cfg = tmp_path / "leaksentry.toml"
    cfg.write_text(SECRET_CONFIG.format(state=tmp_path / "state"))
    cfg.chmod(0o600)
    r = run(cfg)
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    named = " ".join(warnings)
    for path in ("elasticsearch.api_key", "alerts.channels[0].password",
                 "alerts.channels[1].url", "alerts.channels[1].headers.X-Api-Key",
                 "sources[0].headers.Authorization"):
        assert path in named, r.stderr
    assert "X-Team" not in named and "User-Agent" not in named
    assert len(warnings) == 5, r.stderr
    assert "secret-" not in r.stdout + r.stderr  # named, never shown

    cfg.chmod(0o644)
    r = run(cfg)
    assert r.returncode == 2, r.stdout + r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "readable by group or others" in last and "0644" in last and str(cfg) in last
    assert "Traceback" not in r.stderr and "secret-" not in r.stdout + r.stderr


def test_no_secrets_no_warning_whatever_the_mode(tmp_path: Path) -> None:
    cfg = tmp_path / "leaksentry.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path}"\n\n[elasticsearch]\napi_key_env = "ES_KEY"\n')
    cfg.chmod(0o644)
    r = run(cfg)
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr


def test_config_check_applies_the_sources_own_guard_policy(tmp_path: Path) -> None:
    """allow_private no longer opens everything: metadata and link-local stay refused,
    and private_hosts scopes it (issue 20, item 2)."""
    cfg = tmp_path / "leaksentry.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path}"\n\n'
                   '[[sources]]\nname = "meta"\nkind = "watch"\nallow_private = true\n'
                   'url = "http://169.254.169.254/latest/meta-data/"\n\n'
                   '[[sources]]\nname = "ll"\nkind = "watch"\nallow_private = true\n'
                   'url = "http://169.254.7.7/x"\n\n'
                   '[[sources]]\nname = "scoped"\nkind = "watch"\nallow_private = true\n'
                   'private_hosts = ["127.0.0.1:8080"]\n'
                   'urls = ["http://127.0.0.1:8080/ok", "http://127.0.0.1:9090/no"]\n')
    r = run(cfg)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert any("(meta)" in x and "never crawl it" in x for x in lines), r.stderr
    assert any("(ll)" in x and "even with allow_private" in x for x in lines), r.stderr
    scoped = [x for x in lines if "(scoped)" in x]
    assert len(scoped) == 1 and ":9090/no" in scoped[0] and "private_hosts" in scoped[0]
