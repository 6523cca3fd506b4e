"""`leaksentry run` as a real process, with second-level schedules and the stand-in
crawl (tests/scheduler/fake_crawl.py, see its docstring for why)."""

from __future__ import annotations

import json
import signal
import urllib.request

import pytest
from typer.testing import CliRunner

from leaksentry.cli import app

#: real daemon processes: seconds each, even on a quiet machine
pytestmark = pytest.mark.slow


def test_crawls_on_schedule_hung_source_killed_others_keep_schedule(harness):
    harness.write_config(
        [
            harness.fake_source("alpha"),
            harness.fake_source("beta"),
            harness.fake_source("stuck", every="1s", timeout="2s"),
        ],
        fake={"stuck": {"mode": "hang"}},
    )
    proc = harness.start_ready()
    # the hung crawl starts and is killed at its timeout...
    harness.wait_for(
        lambda: [r for r in harness.runs("stuck") if r["outcome"] == "timeout"],
        60,
        "the hung crawl to be stopped at its timeout",
    )
    grandchild = int((harness.root / "stuck.grandchild").read_text())
    harness.wait_for(
        lambda: not harness.pid_alive(grandchild), 10, "the hung crawl's child to be killed too"
    )
    # ...while the others keep running on their schedule, several times
    harness.wait_for(
        lambda: len(harness.runs("alpha")) >= 3 and len(harness.runs("beta")) >= 3,
        60,
        "alpha and beta to run three times",
    )
    assert {r["outcome"] for r in harness.runs("alpha")} == {"ok"}
    stuck = next(r for r in harness.runs("stuck") if r["outcome"] == "timeout")
    assert "daemon's 2s limit" in stuck["error"]
    # max_instances=1: never two crawls of a source at once
    starts = harness.crawl_events("start", "alpha")
    ends = harness.crawl_events("end", "alpha")
    assert len(starts) - len(ends) <= 1
    assert proc.poll() is None
    skipped = (
        "leaksentry_runs_skipped_total",
        (("job", "crawl:stuck"), ("reason", "still_running")),
    )
    assert harness.scrape()[skipped] >= 1
    assert "maximum number of running instances" not in harness.log_text()
    health = json.load(urllib.request.urlopen(harness.metrics_url() + "/healthz", timeout=10))
    assert health["status"] == "ok" and health["pid"] == proc.pid


def test_metrics_parse_and_change_as_crawls_happen(harness):
    harness.write_config(
        [harness.fake_source("alpha"), harness.fake_source("broken")],
        fake={"broken": {"mode": "crash"}},
    )
    harness.start_ready()
    key = ("leaksentry_crawls_total", (("outcome", "ok"), ("source", "alpha")))
    first = harness.wait_for(lambda: harness.scrape().get(key), 60, "a first counted crawl")
    second = harness.wait_for(
        lambda: (v := harness.scrape().get(key, 0)) > first and v, 60, "the crawl counter to grow"
    )
    assert second > first
    m = harness.scrape()
    assert m[("leaksentry_documents_scanned_total", (("source", "alpha"),))] >= 2 * first
    assert m.get(("leaksentry_crawls_total", (("outcome", "error"), ("source", "broken"))), 0) >= 1
    assert m[("leaksentry_source_healthy", (("source", "alpha"),))] == 1
    assert m[("leaksentry_source_last_success_timestamp_seconds", (("source", "alpha"),))] > 0
    assert ("leaksentry_source_last_success_timestamp_seconds", (("source", "broken"),)) not in m
    # the crash's last output line is the recorded error
    broken = harness.runs("broken")[0]
    assert broken["outcome"] == "error" and "something broke badly" in broken["error"]
    assert any(k[0] == "leaksentry_outbox_depth" for k in m)


def test_invalid_config_refuses_to_start_with_one_line(harness):
    harness.write_config([harness.fake_source("alpha", cron="not a cron")])
    proc = harness.start()
    assert proc.wait(timeout=60) == 2
    out = harness.log_text().strip().splitlines()
    assert len(out) == 1 and "cron" in out[0] and "sources[0] (alpha)" in out[0]
    assert not (harness.state / "daemon.json").exists()


def test_corrupt_job_store_refused_with_one_line(harness):
    harness.write_config([harness.fake_source("alpha")])
    harness.state.mkdir()
    (harness.state / "scheduler.db").write_bytes(b"this is not a database" * 100)
    proc = harness.start()
    assert proc.wait(timeout=60) == 2
    out = harness.log_text().strip().splitlines()
    assert len(out) == 1 and "scheduler.db: cannot use the job store" in out[0], out
    assert not (harness.state / "daemon.json").exists()


def test_missing_crawl_command_refused(harness):
    harness.write_config([harness.fake_source("alpha")], daemon={"crawl_command": ["/nope/x"]})
    proc = harness.start()
    assert proc.wait(timeout=60) == 2
    out = harness.log_text().strip().splitlines()
    assert len(out) == 1 and "daemon.crawl_command" in out[0] and "/nope/x" in out[0]


def test_non_loopback_metrics_host_refused(harness):
    harness.write_config([harness.fake_source("alpha")], daemon={"metrics_host": "0.0.0.0"})
    proc = harness.start()
    assert proc.wait(timeout=60) == 2
    out = harness.log_text().strip().splitlines()
    assert len(out) == 1 and "daemon.metrics_host" in out[0] and "loopback" in out[0]


def test_sighup_valid_then_invalid_config(harness):
    harness.write_config([harness.fake_source("alpha"), harness.fake_source("beta", every="1h")])
    proc = harness.start_ready()
    harness.wait_for(lambda: len(harness.runs("alpha")) >= 1, 60, "alpha to run")
    # valid: alpha removed, gamma added, beta rescheduled from hourly to every second
    harness.write_config([harness.fake_source("beta"), harness.fake_source("gamma")])
    proc.send_signal(signal.SIGHUP)
    harness.wait_for(lambda: "config reloaded" in harness.log_text(), 30, "the reload")
    alpha_after_reload = len(harness.runs("alpha"))
    harness.wait_for(
        lambda: len(harness.runs("gamma")) >= 2 and len(harness.runs("beta")) >= 2,
        60,
        "gamma (added) and beta (rescheduled) to run",
    )
    # a run of alpha already under way may finish; no new one starts
    assert len(harness.runs("alpha")) <= alpha_after_reload + 1
    line = next(ln for ln in harness.log_text().splitlines() if "config reloaded" in ln)
    assert "added crawl:gamma" in line and "removed crawl:alpha" in line
    assert "rescheduled crawl:beta" in line
    # invalid: the old config keeps running, with one clear line
    harness.config.write_text(harness.config.read_text() + "\n[daemon.bogus]\nx = 1\n")
    proc.send_signal(signal.SIGHUP)
    harness.wait_for(lambda: "config reload failed" in harness.log_text(), 30, "the failed reload")
    fails = [ln for ln in harness.log_text().splitlines() if "config reload failed" in ln]
    assert len(fails) == 1 and str(harness.config) in fails[0]
    n = len(harness.runs("gamma"))
    harness.wait_for(lambda: len(harness.runs("gamma")) >= n + 2, 60, "gamma to keep running")
    # ...with the config the daemon validated (its snapshot), not the broken file
    assert {r["outcome"] for r in harness.runs("gamma")[n:]} == {"ok"}
    assert proc.poll() is None


def test_sigterm_with_crawl_running_stops_gracefully(harness):
    harness.write_config(
        [harness.fake_source("slow", every="1s", timeout="5m")],
        daemon={"grace_period": "1s", "kill_after": "2s"},
        fake={"slow": {"mode": "slow", "sleep": 600}},
    )
    proc = harness.start_ready()
    start = harness.wait_for(
        lambda: harness.crawl_events("start", "slow"), 60, "the crawl to start"
    )
    crawl_pid = int(start[0].split()[2])
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert not harness.pid_alive(crawl_pid)
    runs = harness.runs("slow")
    assert [r["outcome"] for r in runs] == ["killed"]
    assert "shutting down" in runs[0]["error"]
    assert not (harness.state / "daemon.json").exists()
    assert list((harness.state / "crawls").glob("*.json")) == []
    assert "daemon stopped" in harness.log_text()


def test_sigint_then_second_signal_exits_at_once(harness):
    """Ctrl-C (SIGINT) starts the same graceful stop; a second one exits at once."""
    harness.write_config(
        [harness.fake_source("slow", every="1s", timeout="5m")],
        daemon={"grace_period": "10m"},
        fake={"slow": {"mode": "stubborn"}},
    )
    proc = harness.start_ready()
    start = harness.wait_for(
        lambda: harness.crawl_events("start", "slow"), 60, "the crawl to start"
    )
    crawl_pid = int(start[0].split()[2])
    proc.send_signal(signal.SIGINT)
    harness.wait_for(lambda: "SIGINT: stopping" in harness.log_text(), 30, "shutdown to begin")
    assert proc.poll() is None  # waiting for the grace period
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 128 + signal.SIGINT
    harness.wait_for(lambda: not harness.pid_alive(crawl_pid), 10, "the crawl to be killed")


def test_kill9_mid_crawl_then_restart_resumes(harness):
    harness.write_config(
        [harness.fake_source("slow", every="1s", timeout="5m"), harness.fake_source("quick")],
        fake={"slow": {"mode": "slow", "sleep": 600}},
        daemon={"grace_period": "1s"},
    )
    proc = harness.start_ready()
    start = harness.wait_for(
        lambda: harness.crawl_events("start", "slow"), 60, "the crawl to start"
    )
    crawl_pid = int(start[0].split()[2])
    harness.wait_for(lambda: harness.runs("quick"), 60, "quick to run")
    proc.kill()
    proc.wait()
    assert harness.pid_alive(crawl_pid)  # its own session: survives the daemon
    # the job store still holds both jobs
    restarted = harness.start_ready()
    harness.wait_for(
        lambda: not harness.pid_alive(crawl_pid), 30, "the orphaned crawl to be stopped"
    )
    killed = harness.wait_for(
        lambda: [r for r in harness.runs("slow") if r["outcome"] == "killed"],
        30,
        "the interrupted crawl to be recorded",
    )
    assert len(killed) == 1 and "previous daemon" in harness.log_text()
    n = len(harness.runs("quick"))
    harness.wait_for(lambda: len(harness.runs("quick")) >= n + 2, 60, "the schedule to resume")
    harness.wait_for(
        lambda: len(harness.crawl_events("start", "slow")) >= 2, 60, "slow to be crawled again"
    )
    assert restarted.poll() is None


def status_json(harness) -> dict:
    """`leaksentry status --json`, in-process (it only reads the state directory)."""
    r = CliRunner().invoke(app, ["status", "--config", str(harness.config), "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_status_with_and_without_daemon_and_one_daemon_per_state_dir(harness):
    harness.write_config([harness.fake_source("alpha"), harness.fake_source("hourly", every="1h")])
    st = status_json(harness)
    assert st["daemon_pid"] is None
    assert [s["name"] for s in st["sources"]] == ["alpha", "hourly"]
    assert all(s["next_run"] is None and s["healthy"] is None for s in st["sources"])
    proc = harness.start_ready()
    harness.wait_for(lambda: harness.runs("alpha"), 60, "alpha to run")
    st = status_json(harness)
    assert st["daemon_pid"] == proc.pid and st["metrics_url"].startswith("http://127.0.0.1:")
    by = {s["name"]: s for s in st["sources"]}
    assert by["alpha"]["healthy"] is True and by["alpha"]["last_outcome"] == "ok"
    assert by["hourly"]["next_run"] and by["hourly"]["last_run"] is None
    assert set(st["jobs"]) >= {"outbox", "spool", "health"}
    # a second daemon on the same state directory (and job store) refuses to start
    second = harness.start()
    assert second.wait(timeout=60) == 2
    line = harness.log_text().strip()
    assert "another leaksentry daemon" in line and len(line.splitlines()) == 1
    assert proc.poll() is None
    text = CliRunner().invoke(
        app, ["status", "--config", str(harness.config)], env={"COLUMNS": "200"}
    )
    assert text.exit_code == 0 and "running" in text.output and "alpha" in text.output
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    # after the daemon: next runs still come from the job store
    st = status_json(harness)
    assert st["daemon_pid"] is None
    assert {s["name"]: s for s in st["sources"]}["hourly"]["next_run"] == by["hourly"]["next_run"]


@pytest.mark.parametrize("fmt", ["json"])
def test_json_logs(harness, fmt):
    harness.write_config([harness.fake_source("alpha")], daemon={"log_format": fmt})
    proc = harness.start_ready()
    harness.wait_for(
        lambda: "crawl of alpha finished" in harness.log_text(), 60, "a finished crawl"
    )
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    records = [json.loads(ln) for ln in harness.log_text().splitlines() if ln.startswith("{")]
    done = [r for r in records if r["msg"].startswith("crawl of alpha finished")]
    assert done and done[0]["source"] == "alpha" and done[0]["outcome"] == "ok"
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)


def test_source_health_alert_and_recovery_through_the_daemon(harness):
    """A source that keeps failing raises one health alert (the daemon's health job),
    delivered by its outbox job to a real signed-webhook receiver; one recovery notice
    follows when it works again."""
    from leaksentry.demo.sites import WebhookReceiver

    receiver = WebhookReceiver("health-secret").start()
    try:
        raw = (
            '\n[[alerts.channels]]\nname = "team"\ntype = "webhook"\n'
            f'url = "{receiver.hook_url}"\nsecret = "health-secret"\n'
        )
        harness.write_config(
            [harness.fake_source("flaky")],
            sections={"alerts": {"backoff_base": "1s"}, "crawler": {"unhealthy_after": 2}},
            raw=raw,
            fake={"flaky": {"mode": "fail"}},
        )
        harness.start_ready()

        def kinds() -> list[str]:
            return [d.event for d in receiver.unique()]  # X-LeakSentry-Event

        harness.wait_for(lambda: "health" in kinds(), 90, "the health alert")
        (harness.root / "fake_crawl.json").write_text(json.dumps({}))  # it works again
        harness.wait_for(lambda: "recovery" in kinds(), 90, "the recovery notice")
        n = len(harness.runs("flaky"))
        harness.wait_for(lambda: len(harness.runs("flaky")) >= n + 1, 60, "another run")
        assert kinds() == ["health", "recovery"] and receiver.duplicates() == 0
        body = receiver.unique()[0].body
        assert "flaky" in json.dumps(body)
    finally:
        receiver.stop()
