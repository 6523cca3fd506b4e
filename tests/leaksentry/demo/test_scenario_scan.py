"""The scenario against the real matcher and extractor, without the crawler: each
planted file or paste, scanned as the crawler's pipeline scans it, gives exactly the
expected record refs and severity (and the JavaScript page gives nothing without a
browser). This pins the scenario to the real components early."""

from __future__ import annotations

from pathlib import Path

import pytest

from leaksentry.config.extract import ExtractConfig
from leaksentry.config.matching import MatchingConfig
from leaksentry.demo.config import matching_table
from leaksentry.demo.scenario import build_scenario
from pipelines.model import Document


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("pipelines.match.scanner")
    from pipelines.match import Matcher, build_fingerprints, generate_key, read_key
    from pipelines.process import scan_document

    sc = build_scenario(tmp_path_factory.mktemp("demo"), export_rows=400, register_extra=120)
    sc.key_path.parent.mkdir(parents=True, exist_ok=True)
    generate_key(sc.key_path)
    cfg = MatchingConfig.model_validate(matching_table(sc))
    build_fingerprints(sc.register, read_key(sc.key_path), sc.fingerprints_path,
                       hkid_column="hkid", hn_column="hn", ref_column="ref", config=cfg)
    matcher = Matcher.from_config(cfg)
    extract = ExtractConfig(passwords=list(sc.passwords))

    def scan(name: str, content: bytes, source: str):
        doc = Document(url=f"http://127.0.0.1/{name}", source=source, content=content,
                       filename=Path(name).name)
        return scan_document(doc, matcher, extract, tuple(sc.passwords)).result

    results = {}
    for it in sc.items:
        if it.site == "feed":
            paste = next(p for p in sc.pastes if p.key == it.marker)
            results[it.key] = scan(it.marker, paste.body, "pastes")
        else:
            root = {"directory": sc.directory_root, "rendered": sc.rendered_root,
                    "watch": sc.watch_root}[it.site]
            path = next(root.rglob(it.marker))
            results[it.key] = scan(path.name, path.read_bytes(), it.site)
    return sc, results


def test_each_planted_item_scans_as_expected(scanned) -> None:
    sc, results = scanned
    for it in sc.items:
        r = results[it.key]
        if it.site == "rendered":
            # raw HTML: the identifiers exist only after JavaScript runs
            assert r.matched_records == 0 and r.severity == "none", it.key
            continue
        assert r.status == "ok", (it.key, r.status, r.error)
        assert set(r.record_refs) == set(it.refs), it.key
        assert r.severity == it.severity, (it.key, r.severity)


def test_strangers_counted_not_matched(scanned) -> None:
    _, results = scanned
    r = results["paste-strangers"]
    assert r.matched_records == 0
    assert r.unmatched_valid.get("hkid") == 2
