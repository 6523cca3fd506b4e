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


def test_check_exits_1_on_every_problem_it_prints(osmem, tmp_path, sinkdata):
    """Each problem `es check` prints makes it exit 1: a missing alias, a template whose
    content differs from what this version installs, documents the cluster refused."""
    from pipelines.sinks import spool

    cfg = write_config(tmp_path, osmem.url)
    assert run("es", "setup", "--config", cfg).exit_code == 0
    res = run("es", "check", "--config", cfg)
    assert res.exit_code == 0 and "problem:" not in res.output, res.output
    assert "retention policy: none" in res.output and "ISM is not supported" in res.output

    (hits_index,) = osmem.request("GET", "/_alias/leaksentry-hits")
    osmem.request("DELETE", f"/{hits_index}")  # the hits alias goes with its only index
    res = run("es", "check", "--config", cfg)
    assert res.exit_code == 1
    assert "problem: alias leaksentry-hits is missing: run `leaksentry es setup`" in res.output
    assert run("es", "setup", "--config", cfg).exit_code == 0

    # hand-edited template (same _meta.template_version): found by content
    t = osmem.request("GET", "/_index_template/leaksentry-documents")["index_templates"][0]
    body = t["index_template"]
    body["template"]["mappings"]["properties"]["leaksentry"]["properties"]["status"] = {
        "type": "text"}
    osmem.request("PUT", "/_index_template/leaksentry-documents", body)
    report = json.loads(run("es", "check", "--json", "--config", cfg).output)
    assert report["templates"]["leaksentry-documents"] == "outdated" and not report["ok"]
    assert any("leaksentry.properties.status.type: text (expected keyword)" in p
               for p in report["problems"])
    assert run("es", "check", "--config", cfg).exit_code == 1
    assert run("es", "setup", "--config", cfg).exit_code == 0
    assert run("es", "check", "--config", cfg).exit_code == 0

    settings = load_config(cfg)
    store = Store(settings.state.db)
    with store.transaction() as tx:
        spool._enqueue(tx, "hits", sinkdata.BASE_TIME, "bad-doc", {"stray": "field"})
    store.close()
    assert "rejected 1" in run("es", "flush", "--config", cfg).output
    res = run("es", "check", "--config", cfg)
    assert res.exit_code == 1 and "1 document(s) refused by the cluster" in res.output


def test_setup_refuses_a_server_without_wildcard(osmem, tmp_path):
    from fixtures_osmem import CompatProxy

    def old(method, path, body, headers):
        if path == "/":
            return 200, json.dumps({"version": {"number": "2.11.1",
                                                "distribution": "opensearch"}}).encode()
        return None

    proxy = CompatProxy(osmem, intercept=old)
    try:
        cfg = write_config(tmp_path, proxy.url)
        res = run("es", "setup", "--config", cfg)
        assert res.exit_code != 0
        assert "OpenSearch 2.11.1 has no `wildcard` field type" in str(res.exception)
        res = run("es", "check", "--config", cfg)
        assert res.exit_code == 1 and "OpenSearch >= 2.15" in res.output
    finally:
        proxy.close()
