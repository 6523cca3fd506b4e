"""ECS documents, deterministic ids and the strict templates they must fit."""

from __future__ import annotations

from datetime import timedelta

import pytest

from leaksentry.redaction import redact as scrub
from pipelines.model import Finding, Match, ScanResult
from pipelines.sinks import ecs, templates


def leaf_paths(doc: dict, shown: set[str], prefix: str = "") -> dict[str, object]:
    """Leaf field paths of a document; objects mapped ``enabled: false`` count as one leaf."""
    out: dict[str, object] = {}
    for k, v in doc.items():
        path = f"{prefix}{k}"
        if path in shown:
            out[path] = v
            continue
        items = v if isinstance(v, list) else [v]
        for item in items:
            if isinstance(item, dict):
                out.update(leaf_paths(item, shown, path + "."))
            else:
                out[path] = item
    return out


def mapping_types(mapping: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in mapping["properties"].items():
        if "properties" in v:
            out.update(mapping_types(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v["type"] if v.get("enabled", True) else "shown"
    return out


SUITS = {"keyword": str, "wildcard": str, "text": str, "date": str, "boolean": bool,
         "integer": int, "long": int, "float": (int, float), "shown": dict}


@pytest.mark.parametrize("kind", [ecs.HITS, ecs.DOCUMENTS])
def test_every_field_is_mapped_with_a_suitable_type(kind, sinkdata):
    f = sinkdata.hit_finding(sinkdata.people(3), url="https://a.example/x", leak_in_text=True)
    doc = ecs.hit_document(f, None) if kind == ecs.HITS else ecs.document_document(f)
    types = mapping_types(templates.MAPPINGS[kind]())
    shown = {p for p, t in types.items() if t == "shown"}
    assert shown == {"leaksentry.detail"}
    for path, value in leaf_paths(doc, shown).items():
        assert path in types, f"{path} is not in the {kind} mapping"
        assert isinstance(value, SUITS[types[path]]), (path, value, types[path])
    assert templates.MAPPINGS[kind]()["dynamic"] == "strict"


def test_hit_document_fields(sinkdata):
    ps = sinkdata.people(120)
    f = sinkdata.hit_finding(ps, url="https://paste.example/raw/abc", source="pastebin")
    doc = ecs.hit_document(f, None, max_matches=50)
    assert doc["event"]["kind"] == "alert" and doc["event"]["dataset"] == "leaksentry.hit"
    assert doc["event"]["severity"] == 4 and doc["leaksentry"]["severity"] == "critical"
    assert doc["url"] == {"full": "https://paste.example/raw/abc", "domain": "paste.example"}
    assert doc["observer"]["type"] == "poller"
    assert doc["file"]["hash"]["sha256"] == f.sha256
    ls = doc["leaksentry"]
    assert len(ls["record_refs"]) == 120 and ls["record_refs"][:3] == ["1", "2", "3"]
    d = ls["detail"]
    assert len(d["matches"]) == 50 and d["matches_total"] == 240 and d["matches_truncated"]
    assert d["matches"][0] == {"kind": "hkid", "masked": f"{ps[0].hkid[:3]}****({ps[0].hkid[-1]})",
                               "record_ref": "1", "count": 1, "where": "Sheet1!C2"}
    assert d["unmatched_valid"] == {"hkid": 2} and ls["unmatched_valid_total"] == 2
    assert ls["kinds"] == ["hkid", "hn"] and ls["matched_records"] == 120
    assert "original" not in doc["event"] and "content" not in doc


def test_ids_are_deterministic(sinkdata):
    ps = sinkdata.people(2)
    a = sinkdata.hit_finding(ps, url="https://a.example/1")
    b = sinkdata.hit_finding(ps, url="https://a.example/1",
                             when=sinkdata.BASE_TIME + timedelta(days=1))
    c = sinkdata.hit_finding(ps, url="https://a.example/2")
    assert ecs.hit_id(a) == ecs.hit_id(b) != ecs.hit_id(c)
    assert ecs.document_id(a) != ecs.document_id(b)  # a second scan is a second document
    assert ecs.document_id(a) == ecs.document_id(sinkdata.hit_finding(
        ps, url="https://a.example/1"))
    assert ecs.month_index("ls", "hits", sinkdata.BASE_TIME) == "ls-hits-2026.11"


def test_local_path_is_not_a_url():
    f = Finding(url="/data/leak.csv", source="scan", sha256="0" * 64, size=1,
                fetched_at=ecs.datetime(2026, 1, 2, tzinfo=ecs.UTC),
                result=ScanResult(severity="low", matched_records=1, record_refs=["7"],
                                  matches=[Match("hkid", "A12****(3)", "7", 1, "line 1")]))
    doc = ecs.hit_document(f, None)
    assert "url" not in doc and doc["leaksentry"]["path"] == "/data/leak.csv"


@pytest.mark.parametrize("text", ["A123456(3)", "a1234563", "Ａ１２３４５６（３）", "A123456 3",
                                  "AB987654(3)", "see G123456A.", "x/UH456123(7).xlsx",
                                  "HN12345678"])
def test_scrub_masks_every_written_form(text):
    out = scrub(text)
    assert "****" in out
    for plain in ("123456", "987654", "456123", "345678"):
        assert plain not in out


@pytest.mark.parametrize("text", ["A123456(9)", "order 1234567", "abc123456x"])
def test_scrub_leaves_what_is_not_a_valid_hkid(text):
    assert scrub(text) == text
