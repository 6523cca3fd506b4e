"""`leaksentry status` without a daemon: everything read from the state directory."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from leaksentry.cli import app
from leaksentry.config import load_config
from leaksentry.store import Store
from leaksentry.store.runs import record_run
from pipelines.model import RunSummary

CONFIG = """
[state]
dir = "{state}"

[daemon]
metrics = false

[[sources]]
name = "pastes"
kind = "watch"
url = "http://127.0.0.1:9/"
every = "2m"

[[sources]]
name = "files"
kind = "watch"
url = "http://127.0.0.1:9/"
cron = "0 * * * *"
"""


def setup(tmp_path):
    cfg = tmp_path / "leaksentry.toml"
    cfg.write_text(CONFIG.format(state=tmp_path / "state"))
    return cfg


def test_status_fresh_state(tmp_path):
    cfg = setup(tmp_path)
    r = CliRunner().invoke(app, ["status", "--config", str(cfg), "--json"])
    assert r.exit_code == 0, r.output
    st = json.loads(r.output)
    assert st["daemon_pid"] is None and st["spool_depth"] is None and st["outbox"] == {}
    assert [(s["name"], s["schedule"], s["healthy"]) for s in st["sources"]] == [
        ("pastes", "every 2m", None), ("files", "cron '0 * * * *'", None)]


def test_status_shows_runs_health_and_next_runs(tmp_path):
    cfg = setup(tmp_path)
    settings = load_config(cfg)
    store = Store(settings.state.db)
    now = datetime.now(UTC)
    with store.transaction() as tx:
        record_run(tx, RunSummary("pastes", now - timedelta(seconds=5), now, "ok", discovered=3))
        for _ in range(3):
            record_run(tx, RunSummary("files", now, now, "error", error="HTTP 500 from listing"))
        record_run(tx, RunSummary("retired", now, now, "ok", discovered=1))
    # the job store as a stopped daemon left it
    from scheduler.daemon import Daemon

    d = Daemon(settings, cfg)
    d.start()
    d.scheduler.shutdown(wait=False)
    d.close()

    r = CliRunner().invoke(app, ["status", "--config", str(cfg), "--json"])
    assert r.exit_code == 0, r.output
    st = json.loads(r.output)
    by = {s["name"]: s for s in st["sources"]}
    assert by["pastes"]["healthy"] is True and by["pastes"]["last_outcome"] == "ok"
    assert by["files"]["healthy"] is False and "3 consecutive failed runs" in by["files"]["reason"]
    assert by["retired"]["configured"] is False
    nxt = datetime.fromisoformat(by["pastes"]["next_run"])
    assert now < nxt <= now + timedelta(minutes=3)
    assert st["outbox"].get("pending") == 0 and st["spool_depth"] == 0
    assert st["daemon_pid"] is None

    text = CliRunner().invoke(app, ["status", "--config", str(cfg)],
                              env={"COLUMNS": "250"})
    assert text.exit_code == 0
    assert "not running" in text.output and "unhealthy" in text.output
    assert "alert outbox: dead 0" in text.output
