"""deploy/leaksentry.service: the unit matches how the daemon handles signals."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from leaksentry.config.daemon import DaemonConfig

UNIT = Path(__file__).parents[2] / "deploy" / "leaksentry.service"


def directives() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            k, v = line.split("=", 1)
            out.setdefault(k, []).append(v)
    return out


def test_unit_runs_the_daemon_and_maps_signals():
    d = directives()
    assert d["ExecStart"][0].split()[1:3] == ["run", "--config"]
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert d["KillMode"] == ["mixed"] and d["KillSignal"] == ["SIGTERM"]
    assert d["RestartPreventExitStatus"] == ["2"]  # config errors exit 2
    # systemd must not SIGKILL before the daemon's own grace period and kill delay
    defaults = DaemonConfig()
    assert float(d["TimeoutStopSec"][0]) > defaults.grace_period + defaults.kill_after + 10


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_unit_verifies(tmp_path):
    exe = Path(sys.executable).with_name("leaksentry")
    unit = tmp_path / "leaksentry.service"
    unit.write_text(UNIT.read_text().replace("/opt/leaksentry/.venv/bin/leaksentry", str(exe)))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                       text=True, timeout=60)
    problems = [ln for ln in (r.stdout + r.stderr).splitlines()
                if "leaksentry.service" in ln and "not executable" not in ln]
    assert r.returncode == 0 and problems == [], r.stdout + r.stderr
