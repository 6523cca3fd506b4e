"""`leaksentry es setup | check | flush` against a real osmem-server."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from leaksentry.cli import app
from leaksentry.config import load_config
from leaksentry.store import Store
from pipelines.flow import record_finding


def write_config(tmp_path, url: str, extra: str = "") -> str:
    cfg = tmp_path / "leaksentry.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path}"\n\n[elasticsearch]\nurl = "{url}"\n'
                   f'backend = "opensearch"\ntimeout = "3s"\n{extra}')
    return str(cfg)


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_setup_check_flush(osmem, tmp_path, sinkdata):
    cfg = write_config(tmp_path, osmem.url)
    res = run("es", "check", "--json", "--config", cfg)
    report = json.loads(res.output)
    assert res.exit_code == 1 and report["templates"]["leaksentry-hits"] == "missing"

    res = run("es", "setup", "--config", cfg)
    assert res.exit_code == 0, res.output
    assert "leaksentry-hits" in res.output and "ISM is not supported" in res.output
    assert run("es", "setup", "--config", cfg).exit_code == 0  # idempotent

    settings = load_config(cfg)
    store = Store(settings.state.db)
    for f in sinkdata.a_month_of_findings(sinkdata.people(20), ["pastebin"], 4):
        record_finding(store, f, settings)
    store.close()
    res = run("es", "check", "--config", cfg)
    assert res.exit_code == 0, res.output
    assert "spool: 8 waiting" in res.output and "opensearch 3" in res.output

    res = run("es", "flush", "--config", cfg)
    assert res.exit_code == 0 and "delivered 8" in res.output
    report = json.loads(run("es", "check", "--json", "--config", cfg).output)
    assert report["ok"] and report["spool_depth"] == 0
    assert report["aliases"] == {"leaksentry-hits": 4, "leaksentry-documents": 4}


def test_check_unreachable_and_flush_error(tmp_path, sinkdata):
    cfg = write_config(tmp_path, "http://127.0.0.1:9")
    res = run("es", "check", "--config", cfg)
    assert res.exit_code == 1 and "reachable: no" in res.output
    assert "127.0.0.1:9" in res.output
    settings = load_config(cfg)
    store = Store(settings.state.db)
    record_finding(store, sinkdata.hit_finding(sinkdata.people(1), url="https://a.example/1"),
                   settings)
    store.close()
    res = run("es", "flush", "--config", cfg)
    assert res.exit_code != 0 and "unreachable" in str(res.exception or res.output)


@pytest.mark.parametrize("extra,needle", [
    ('verify_tls = "maybe"\n', "verify_tls"),
    ('index_prefix = "Bad Prefix"\n', "index_prefix"),
])
def test_bad_config_names_the_field(tmp_path, extra, needle):
    cfg = write_config(tmp_path, "http://127.0.0.1:9", extra)
    res = run("es", "setup", "--config", cfg)
    assert res.exit_code != 0 and needle in str(res.exception)


def test_not_configured(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path}"\n')
    res = run("es", "setup", "--config", str(cfg))
    assert res.exit_code != 0 and "no url configured" in str(res.exception)


def test_spool_lists_rejected_and_requeues(osmem, tmp_path, sinkdata):
    from pipelines.sinks import spool

    cfg = write_config(tmp_path, osmem.url)
    assert run("es", "setup", "--config", cfg).exit_code == 0
    settings = load_config(cfg)
    store = Store(settings.state.db)
    with store.transaction() as tx:
        spool._enqueue(tx, "hits", sinkdata.BASE_TIME, "bad-doc", {"stray": "field"})
    record_finding(store, sinkdata.hit_finding(sinkdata.people(2), url="https://a.example/1"),
                   settings)
    store.close()
    res = run("es", "flush", "--config", cfg)
    assert res.exit_code == 0 and "delivered 2" in res.output and "rejected 1" in res.output
    res = run("es", "spool", "--config", cfg)
    assert "0 waiting, 1 rejected" in res.output and "hits-2026.11/bad-doc" in res.output
    assert "strict" in res.output
    res = run("es", "spool", "--requeue", "--config", cfg)
    assert "re-queued 1" in res.output and "1 waiting, 0 rejected" in res.output
