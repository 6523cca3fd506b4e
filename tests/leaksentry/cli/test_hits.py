"""`leaksentry hits`: the local store, filters, --json, and no plaintext in the output."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from leaksentry.cli import app
from leaksentry.cli.hits import parse_since
from leaksentry.config import Settings
from leaksentry.errors import LeakSentryError
from leaksentry.store import Store
from pipelines.flow import record_finding


@pytest.fixture
def config(tmp_path, sinkdata):
    cfg = tmp_path / "leaksentry.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path}"\n')
    settings = Settings.model_validate({"state": {"dir": str(tmp_path)}})
    store = Store(settings.state.db)
    ps = sinkdata.people(120)
    now = datetime.now(UTC)
    for i, f in enumerate(sinkdata.a_month_of_findings(ps, ["pastebin", "gists"], 12)):
        record_finding(store, replace(f, fetched_at=now - timedelta(hours=10 * i)), settings)
    leak = sinkdata.hit_finding(ps[:3], url=f"https://x.example/{ps[0].hkid}", source="tg",
                                when=now, leak_in_text=True)
    record_finding(store, leak, settings)
    store.close()
    return cfg


def run(*args: str):
    res = CliRunner().invoke(app, list(args))
    return res


def test_hits_json_and_filters(config, sinkdata):
    res = run("hits", "--json", "--config", str(config))
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines()]
    assert len(rows) == 13
    res = run("hits", "--json", "--min-severity", "critical", "--config", str(config))
    crit = [json.loads(line) for line in res.output.splitlines()]
    assert crit and {r["severity"] for r in crit} == {"critical"}
    assert len(crit) == sum(r["severity"] == "critical" for r in rows)
    res = run("hits", "--json", "--source", "gists", "--since", "48h", "--config", str(config))
    recent = [json.loads(line) for line in res.output.splitlines()]
    assert recent and {r["source"] for r in recent} == {"gists"}
    assert len(recent) < sum(r["source"] == "gists" for r in rows)
    res = run("hits", "--json", "--limit", "2", "--config", str(config))
    assert len(res.output.splitlines()) == 2


def test_hits_table_and_no_plaintext(config, sinkdata):
    res = run("hits", "--config", str(config))
    assert res.exit_code == 0 and "hits (13)" in res.output
    out = res.output + run("hits", "--json", "--config", str(config)).output
    for form in sinkdata.planted_forms(sinkdata.people(120)):
        if len(form) >= 7:
            assert form not in out


def test_bad_filters_are_one_line_errors(config, capsys, monkeypatch):
    from leaksentry.cli import main

    monkeypatch.setattr(sys, "argv", ["leaksentry", "hits", "--min-severity", "urgent",
                                      "--config", str(config)])
    with pytest.raises(SystemExit) as exit_:
        main()
    out = capsys.readouterr()
    assert exit_.value.code == 2 and out.out == ""
    assert out.err == ("error: --min-severity: unknown severity 'urgent'"
                       " (one of low, medium, high, critical)\n")
    with pytest.raises(LeakSentryError, match="--since"):
        parse_since("yesterday")


def test_parse_since():
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert parse_since("24h", now) == now - timedelta(hours=24)
    assert parse_since("2026-11-01T00:00:00", now) == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_since("2026-11-01T08:00:00+08:00", now) == datetime(2026, 11, 1, tzinfo=UTC)


def test_empty_store(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path}"\n')
    res = run("hits", "--config", str(cfg))
    assert res.exit_code == 0 and "no hits" in res.output
