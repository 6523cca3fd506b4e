"""The shipped Kibana saved objects and the .es-query rule are consistent with the
index templates: every line parses, every reference resolves, every field a search,
visualisation or rule uses is mapped, with a type that operation can use."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest

from kibana.install import load_objects, load_rule
from pipelines.sinks import templates
from pipelines.sinks.ecs import DOCUMENTS, HITS

DATAVIEW_KIND = {"leaksentry-hits": HITS, "leaksentry-documents": DOCUMENTS}
AGGREGATABLE = {"keyword", "integer", "long", "float", "date", "boolean"}
NUMERIC = {"integer", "long", "float"}


def types_of(kind: str) -> dict[str, str]:
    def walk(m: dict, prefix: str = "") -> dict[str, str]:
        out = {}
        for k, v in m["properties"].items():
            if "properties" in v:
                out.update(walk(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v["type"]
        return out

    return walk(templates.MAPPINGS[kind]())


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    return load_objects()


def test_every_line_parses():
    text = resources.files("kibana").joinpath("saved_objects.ndjson").read_text("utf-8")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) >= 10
    for n, line in enumerate(lines, 1):
        obj = json.loads(line)
        assert {"type", "id", "attributes", "references"} <= obj.keys(), n
        for key in ("searchSourceJSON",):
            meta = obj["attributes"].get("kibanaSavedObjectMeta", {})
            if key in meta:
                json.loads(meta[key])
        for key in ("panelsJSON", "optionsJSON"):
            if key in obj["attributes"]:
                json.loads(obj["attributes"][key])


def test_required_objects_present(objects):
    by_type: dict[str, list[str]] = {}
    for o in objects:
        by_type.setdefault(o["type"], []).append(o["attributes"]["title"])
    assert sorted(by_type["index-pattern"]) == ["leaksentry-documents", "leaksentry-hits"]
    assert any("critical" in t for t in by_type["search"])
    assert any("by source" in t for t in by_type["search"])
    assert len(by_type["dashboard"]) == 1
    lens_titles = " ".join(by_type["lens"])
    for want in ("over time by severity", "top sources", "top domains", "matched records total"):
        assert want in lens_titles


def test_every_reference_resolves(objects):
    ids = {(o["type"], o["id"]) for o in objects}
    assert len(ids) == len(objects), "duplicate ids"
    for o in objects:
        names = set()
        for ref in o["references"]:
            assert (ref["type"], ref["id"]) in ids, f"{o['id']}: dangling {ref}"
            names.add(ref["name"])
        attrs = o["attributes"]
        ss = attrs.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON")
        if ss and "indexRefName" in json.loads(ss):
            assert json.loads(ss)["indexRefName"] in names
        if o["type"] == "dashboard":
            for panel in json.loads(attrs["panelsJSON"]):
                assert f"{panel['panelIndex']}:{panel['panelRefName']}" in names
        if o["type"] == "lens":
            for layer in attrs["state"]["datasourceStates"]["formBased"]["layers"]:
                assert f"indexpattern-datasource-layer-{layer}" in names


def _dataview_kind(o: dict, objects: list[dict]) -> str:
    (dv_id,) = {r["id"] for r in o["references"] if r["type"] == "index-pattern"}
    dv = next(x for x in objects if x["id"] == dv_id)
    return DATAVIEW_KIND[dv["attributes"]["title"]]


def kql_fields(kql: str) -> list[str]:
    return re.findall(r"([A-Za-z@][\w.@]*)\s*:", kql)


def test_fields_used_by_searches_exist_with_suitable_types(objects):
    checked = 0
    for o in (x for x in objects if x["type"] == "search"):
        types = types_of(_dataview_kind(o, objects))
        attrs = o["attributes"]
        for col in attrs["columns"]:
            assert col in types, f"{o['id']}: column {col} not mapped"
            checked += 1
        for field, _ in attrs["sort"]:
            assert types.get(field) in AGGREGATABLE, f"{o['id']}: cannot sort on {field}"
            checked += 1
        ss = json.loads(attrs["kibanaSavedObjectMeta"]["searchSourceJSON"])
        fields = kql_fields(ss["query"]["query"])
        assert fields
        for field in fields:
            assert field in types, f"{o['id']}: query field {field} not mapped"
            checked += 1
    assert checked > 20


def test_fields_used_by_visualisations_exist_with_suitable_types(objects):
    ops = {"terms": AGGREGATABLE, "date_histogram": {"date"}, "sum": NUMERIC,
           "average": NUMERIC, "max": NUMERIC, "min": NUMERIC, "unique_count": AGGREGATABLE}
    seen = set()
    for o in (x for x in objects if x["type"] == "lens"):
        types = types_of(_dataview_kind(o, objects))
        for layer in o["attributes"]["state"]["datasourceStates"]["formBased"]["layers"].values():
            assert set(layer["columnOrder"]) == set(layer["columns"])
            for col in layer["columns"].values():
                op, field = col["operationType"], col["sourceField"]
                seen.add(op)
                if op == "count":
                    continue
                assert types.get(field) in ops[op], f"{o['id']}: {op} on {field}"
    assert {"terms", "date_histogram", "sum", "count"} <= seen


def _query_fields(q: object) -> list[str]:
    out = []
    if isinstance(q, dict):
        for k, v in q.items():
            if k in ("term", "terms", "range", "match", "match_phrase", "exists", "prefix"):
                if k == "exists":
                    out.append(v["field"])
                else:
                    out += list(v)
            else:
                out += _query_fields(v)
    elif isinstance(q, list):
        for v in q:
            out += _query_fields(v)
    return out


def test_rule_fields_exist(objects):
    rule = load_rule()
    assert rule["rule_type_id"] == ".es-query" and rule["id"]
    p = rule["params"]
    assert p["index"] == ["leaksentry-hits"]
    types = types_of(HITS)
    assert types[p["timeField"]] == "date"
    fields = _query_fields(json.loads(p["esQuery"]))
    assert fields
    for f in fields:
        assert types.get(f) in AGGREGATABLE, f


def test_prefix_rewrites_dataviews_and_rule():
    objs = load_objects("soc")
    titles = {o["attributes"]["title"] for o in objs if o["type"] == "index-pattern"}
    assert titles == {"soc-hits", "soc-documents"}
    assert load_rule("soc")["params"]["index"] == ["soc-hits"]


def test_committed_files_match_the_generator():
    from kibana import generate

    files = resources.files("kibana")
    assert files.joinpath("saved_objects.ndjson").read_text("utf-8") == generate.ndjson()
    assert files.joinpath("rule_critical_hits.json").read_text("utf-8") == generate.rule_json()
