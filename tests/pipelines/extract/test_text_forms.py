"""Text as people wrote it: HTML whose fields sit in adjacent inline and block elements,
JSON exports keyed by HKID. Through the real matcher: found, located, nothing leaked."""

from __future__ import annotations

import json

from pipelines.model import Document
from pipelines.process import DocumentScanner


def _scan(matcher, data: bytes, name: str):
    doc = Document(url=f"file:///{name}", source="test", content=data, filename=name)
    with DocumentScanner(matcher, mode="inline") as scanner:
        return scanner.scan(doc).result


def test_html_inline_text_is_not_glued_to_the_next_block(ext, people, real_matcher):
    rows = "".join(f"<span>{p.name}</span><div>{p.hkid[:-1]}({p.hkid[-1]})</div>"
                   f"<span>HN</span><span>{p.hn}</span><br>" for p in people)
    data = f"<html><body><h1>Ward list</h1>{rows}</body></html>".encode()
    r = ext.run(data, "ward.html")
    text = r.parts[0].string
    assert f"{people[0].name}\n{people[0].hkid[:-1]}(" in text  # a line break, not glued
    assert f"HN {people[0].hn}" in text
    result = _scan(real_matcher, data, "ward.html")
    assert sorted(result.record_refs, key=int) == [p.ref for p in people]


def test_formatting_inside_a_word_is_not_split(ext, people):
    p = people[0]
    data = (f"<p>id <b>{p.hkid[0]}</b>{p.hkid[1:]} and <i>{p.hn[:2]}</i>{p.hn[2:]}</p>"
            f"<p>after<!-- a comment -->{people[1].hkid}</p>").encode()
    r = ext.run(data, "x.html")
    text = r.parts[0].string
    assert p.hkid in text and p.hn in text
    assert people[1].hkid in text  # text after a comment is kept


def test_html_table_cells_with_nested_blocks(ext, people):
    cells = "".join(f"<tr><td><span>{p.name}</span><div>{p.hkid}</div></td><td>{p.hn}</td></tr>"
                    for p in people)
    r = ext.run(f"<table>{cells}</table>".encode(), "t.html")
    row = r.where(people[0].hkid)[0]
    assert row.location == "table 1" and row.row == 1
    assert f"{people[0].name} {people[0].hkid}" in row.string


def test_json_keyed_by_hkid(ext, people, real_matcher):
    data = json.dumps({"patients": {p.hkid: {"name": p.name, "hn": p.hn} for p in people}})
    r = ext.run(data.encode(), "export.json")
    r.assert_all_found(people)
    part = r.where(people[0].hkid)[0]
    assert part.string.splitlines()[0] == people[0].hkid  # the key heads its record
    assert people[0].hkid not in part.location and part.location.startswith("$.patients.")
    result = _scan(real_matcher, data.encode(), "export.json")
    assert sorted(result.record_refs, key=int) == [p.ref for p in people]
    assert sorted(result.record_level_refs, key=int) == [p.ref for p in people]
    ext.no_identifiers(json.dumps([m.to_json() for m in result.matches]), people)


def test_json_keys_of_lists_and_empty_objects(ext, people):
    data = json.dumps({"by_id": {people[0].hkid: [], people[1].hkid: {},
                                 people[2].hkid: [{"hn": people[2].hn}]}})
    r = ext.run(data.encode(), "x.json")
    for p in people[:3]:
        assert r.where(p.hkid), p.ref
