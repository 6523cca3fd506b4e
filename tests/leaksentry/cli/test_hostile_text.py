"""Hostile text in the terminal (issue 20, item 5), through the real CLI (subprocesses).

Strangers control paste URLs, page titles, run errors and file names. Printed through
Rich they must never be parsed as markup (``[/`` used to raise MarkupError and kill the
command) and their control characters must be shown escaped: no raw ESC reaches the
terminal, and a newline in a name cannot forge an output line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import pytest
from fixtures_register import fingerprint_people

from leaksentry import synth
from leaksentry.cli.common import markup_safe, shown, visible
from leaksentry.config import Settings
from leaksentry.store import Store
from leaksentry.store.runs import record_run
from pipelines.flow import record_finding
from pipelines.model import RunSummary

HOSTILE = "x[/]y[/bold] [red]z\x1b[2J\x1b]0;owned\x07\rFORGED: line\n" + "\u202e"


def cli(*args: str, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", **(env or {})}
    env.pop("LEAKSENTRY_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "leaksentry", *args], capture_output=True,
                          text=True, timeout=180, env=env, cwd=cwd)


def assert_inert(r: subprocess.CompletedProcess[str]) -> None:
    out = r.stdout + r.stderr
    assert "MarkupError" not in out and "Traceback" not in out, out
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out, repr(out)
    assert not any(line.lstrip().startswith("FORGED") for line in out.splitlines()), out


def test_helpers() -> None:
    assert visible("a\x1bb\nc\td\u202e") == "a\\x1bb\\nc\\td\\u202e"
    assert markup_safe("[/red]") == "\\[/red]"
    assert shown("[bold]x").plain == "[bold]x"  # a Text: never parsed


@pytest.fixture
def state(tmp_path: Path) -> tuple[Path, Settings]:
    cfg = tmp_path / "leaksentry.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n\n[daemon]\nmetrics = false\n\n'
                   '[[sources]]\nname = "pastes"\nkind = "watch"\nurl = "http://127.0.0.1:9/"\n'
                   'every = "2m"\n')
    return cfg, Settings.model_validate({"state": {"dir": str(tmp_path / "state")}})


def test_hits_with_a_hostile_url(state, sinkdata) -> None:
    cfg, settings = state
    store = Store(settings.state.db)
    people = sinkdata.people(3)
    record_finding(store, sinkdata.hit_finding(people, url="https://paste.test/" + HOSTILE,
                                               source="pastes", when=datetime.now(UTC)),
                   settings)
    store.close()
    r = cli("hits", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert_inert(r)
    assert "x[/]y[/bold]" in r.stdout.replace("\n", "").replace(" ", "") or "[/" in r.stdout


def test_status_with_a_hostile_run_error(state) -> None:
    cfg, settings = state
    store = Store(settings.state.db)
    now = datetime.now(UTC)
    with store.transaction() as tx:
        for _ in range(3):
            record_run(tx, RunSummary("pastes", now, now, "error", error="title " + HOSTILE),
                       unhealthy_after=3)
    store.close()
    r = cli("status", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert_inert(r)
    assert "unhealthy" in r.stdout and "[/" in r.stdout


class _Challenge(BaseHTTPRequestHandler):
    """A listing whose <title> is a bot-check title carrying markup and escapes."""

    def do_GET(self) -> None:
        body = (b"<html><head><title>Just a moment [/] [/red] \x1b[31m</title></head>"
                b"<body>wait</body></html>")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_crawl_with_a_hostile_page_title(tmp_path: Path) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Challenge)
    Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/list"
        cfg = tmp_path / "leaksentry.toml"
        cfg.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n\n[[sources]]\n'
                       f'name = "lst"\nkind = "listing"\nurl = "{url}"\nlink_css = "a"\n'
                       'allow_private = true\nobey_robots = false\nretry_max = 0\n')
        # the crawler on its own (no key needed): documents go to a metadata log
        r = cli("crawl", "lst", "--config", str(cfg), "-s",
                "LEAKSENTRY_PROCESSOR=crawler.pipelines.DocLogProcessor", "-s",
                f"LEAKSENTRY_DOCLOG={tmp_path / 'docs.jsonl'}", cwd=tmp_path)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert r.returncode == 1, r.stdout + r.stderr  # the run's outcome is error, recorded
    err_lines = [line for line in r.stderr.splitlines() if line.startswith("lst: error")]
    assert err_lines and "bot-check" in err_lines[0] and "[/" in err_lines[0], r.stderr
    assert "MarkupError" not in r.stdout + r.stderr and "Traceback" not in r.stderr
    # neither the crawl's summary nor Scrapy's log lines carry a raw ESC
    assert "\x1b" not in r.stdout + r.stderr, r.stderr


def test_scan_with_hostile_file_names(tmp_path: Path) -> None:
    people = list(synth.patients(5, seed=3))
    fingerprint_people(tmp_path, people)
    leaks = tmp_path / "leaks"
    leaks.mkdir()
    (leaks / ("evil\x1b[31mred[red]x\nFORGED: clean.txt")).write_text(f"id {people[0].hkid}\n")
    (leaks / "\x1b]0;title\x07plain.txt").write_text("nothing here\n")
    r = cli("scan", "--key", str(tmp_path / "key"), "--fingerprints", str(tmp_path / "fp"),
            str(leaks))
    assert r.returncode == 1, r.stderr  # a match
    assert_inert(r)
    assert "\\x1b[31mred[red]x\\nFORGED" in r.stdout.replace("\n", ""), r.stdout
    assert people[0].hkid not in r.stdout + r.stderr


def test_crawl_log_lines_escape_controls_but_keep_line_breaks() -> None:
    import logging

    from leaksentry.terminal import EscapeControlsFilter

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s: %s", (
        "http://h/\x1b]0;t\x07", "stats {\n 'a': 1}\r"), None)
    assert EscapeControlsFilter().filter(record)
    assert record.getMessage() == "http://h/\\x1b]0;t\\x07: stats {\n 'a': 1}\\r"
