"""Planted leaks through the real extractor and matcher, the local store, the spool and
osmem-server: no planted identifier, in any written form, in SQLite, in any field of any
indexed document, or in `leaksentry hits` output; the hits name the right records."""

from __future__ import annotations

import json
import random

import pytest
from fixtures_register import register_matcher
from typer.testing import CliRunner

from leaksentry import synth
from leaksentry.cli import app
from leaksentry.config import Settings
from leaksentry.store import Store
from pipelines.flow import record_finding
from pipelines.match import Matcher
from pipelines.model import CELL_SEP, Document
from pipelines.process import scan_document
from pipelines.sinks import spool
from pipelines.sinks.client import connect
from pipelines.sinks.setup import setup

N = 80


@pytest.fixture(scope="module")
def matcher(tmp_path_factory) -> Matcher:
    return register_matcher(tmp_path_factory.mktemp("fp"), synth.register_rows(N, seed=11))


def leak_documents(ps: list[synth.Patient]) -> list[Document]:
    rng = random.Random(5)
    rows = ["name,hkid,hn,procedure"] + [
        f"{p.name},{synth.written_hkid(p.hkid, rng)},{p.hn},{p.procedure}" for p in ps[:40]]
    paste = "\n".join(f"patient {p.name} id {synth.written_hkid(p.hkid, rng)} file {p.hn}"
                      for p in ps[40:46])
    return [
        Document(url=f"https://files.example/dl/{ps[0].hkid}.csv", source="files",
                 content="\n".join(rows).encode(), content_type="text/csv",
                 filename=f"{ps[1].hkid} export.csv"),
        Document(url="https://paste.example/raw/Ab12", source="pastebin",
                 content=paste.encode(), content_type="text/plain"),
        Document(url="https://paste.example/raw/clean", source="pastebin",
                 content=b"nothing to see " + CELL_SEP.encode(), content_type="text/plain"),
    ]


def test_planted_leaks_end_to_end(matcher, osmem, tmp_path):
    ps = list(synth.patients(N, seed=11))
    settings = Settings.model_validate({
        "state": {"dir": str(tmp_path)},
        "elasticsearch": {"url": osmem.url, "backend": "opensearch"}})
    store = Store(settings.state.db)
    findings = [scan_document(d, matcher) for d in leak_documents(ps)]
    assert [f.result.matched_records for f in findings] == [40, 6, 0]
    for f in findings:
        record_finding(store, f, settings)
    cluster = connect(settings.elasticsearch)
    setup(cluster)
    report = spool.drain(store, settings)
    assert report.delivered == 5 and report.pending == 0

    hits = cluster.request("POST", "/leaksentry-hits/_search", {"size": 10, "query": {
        "term": {"leaksentry.source": "files"}}})["hits"]["hits"]
    (big,) = hits
    assert big["_source"]["leaksentry"]["record_refs"] == [str(i) for i in range(1, 41)]

    forms = set()
    for p in ps:
        c = p.hkid
        forms |= {c, c.lower(), f"{c[:-1]}({c[-1]})", f"{c[:-1]} {c[-1]}", c[:-1], p.hn,
                  "".join(chr(ord(x) + 0xFEE0) for x in f"{c[:-1]}({c[-1]})")}
    outputs = []
    for index in ("leaksentry-hits", "leaksentry-documents"):
        docs = cluster.request("POST", f"/{index}/_search", {"size": 100})["hits"]["hits"]
        outputs.append(json.dumps([d["_source"] for d in docs], ensure_ascii=False))
    store.close()
    for path in tmp_path.glob("state.db*"):
        outputs.append(path.read_bytes().decode("utf-8", "replace"))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path}"\n')
    res = CliRunner().invoke(app, ["hits", "--json", "--config", str(cfg)])
    assert res.exit_code == 0 and len(res.output.splitlines()) == 2
    outputs.append(res.output)
    blob = "\n".join(outputs)
    leaked = [f for f in forms if f in blob or f.lower() in blob.lower()]
    assert not leaked, f"{len(leaked)} planted identifier form(s) found in outputs"
