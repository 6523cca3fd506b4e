"""`leaksentry alerts test | list | retry` through the real entry point
(`leaksentry.cli.main`, in-process to keep the test fast) against a real UDP
syslog listener and a state file prepared by the planner."""

from __future__ import annotations

import json
import socket
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from leaksentry.config import load_config
from leaksentry.store import Store, outbox
from pipelines.alerts.planner import plan_alerts
from pipelines.alerts.worker import deliver_pending
from pipelines.model import Finding, Match, ScanResult, StoredHit

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def runner(capsys, monkeypatch):
    from leaksentry.cli import main

    def run(*args: str) -> Result:
        monkeypatch.setattr(sys, "argv", ["leaksentry", *args])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return run


def write_config(tmp_path: Path, syslog_port: int, dead_port: int) -> Path:
    cfg = tmp_path / "leaksentry.toml"
    cfg.write_text(f"""
[state]
dir = "{tmp_path / 'state'}"

[alerts]
max_attempts = 1

[[alerts.channels]]
name = "siem"
type = "syslog"
port = {syslog_port}

[[alerts.channels]]
name = "down"
type = "webhook"
url = "http://127.0.0.1:{dead_port}/hook"
secret = "s"
timeout = "5s"

[[alerts.rules]]
channels = ["down"]
""")
    return cfg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_alerts_test_list_and_retry(tmp_path, capsys, monkeypatch):
    run = runner(capsys, monkeypatch)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(10)
    try:
        cfg = write_config(tmp_path, udp.getsockname()[1], free_port())

        r = run("alerts", "test", "siem", "--config", str(cfg))
        assert r.returncode == 0, r.stderr
        assert "delivered" in r.stdout
        data, _ = udp.recvfrom(65535)
        assert b"leaksentry@32473" in data and b'type="test"' in data

        r = run("alerts", "test", "down", "--config", str(cfg))
        assert r.returncode == 2
        assert r.stderr.strip().count("\n") == 0 and "'down'" in r.stderr
        assert "Traceback" not in r.stderr

        r = run("alerts", "test", "nosuch", "--config", str(cfg))
        assert r.returncode == 2 and "no alert channel named 'nosuch'" in r.stderr

        # a hit whose only channel is down becomes a dead letter (max_attempts = 1)
        settings = load_config(cfg)
        store = Store(settings.state.db)
        finding = Finding(url="https://paste.example/raw/z", source="pastebin",
                          sha256="ab" * 32, size=10, fetched_at=T0, result=ScanResult(
                              severity="high", matched_records=1, record_refs=["4"],
                              matches=[Match("hkid", "B38****(9)", "4", 1, "line 2")]))
        with store.transaction() as tx:
            plan_alerts(tx, finding, StoredHit(1, True, T0, "rk"), settings)
        assert deliver_pending(store, settings, T0).dead == 1
        store.close()

        r = run("alerts", "list", "--config", str(cfg), "--json")
        assert r.returncode == 0, r.stderr
        (row,) = [json.loads(line) for line in r.stdout.splitlines()]
        assert (row["channel"], row["state"], row["kind"], row["attempts"]) == (
            "down", "dead", "hit", 1)
        assert "ConnectError" in row["last_error"]

        r = run("alerts", "list", "--config", str(cfg))
        assert r.returncode == 0 and "dead: 1" in r.stdout

        r = run("alerts", "retry", "--config", str(cfg))
        assert r.returncode == 0 and "1 dead letter(s) re-queued" in r.stdout
        store = Store(settings.state.db)
        assert outbox.outbox_counts(store.conn) == {"pending": 1, "retrying": 0,
                                                    "delivered": 0, "dead": 0}
        store.close()

        r = run("alerts", "list", "--config", str(cfg), "--state", "bogus")
        assert r.returncode == 2 and "--state" in r.stderr
    finally:
        udp.close()
