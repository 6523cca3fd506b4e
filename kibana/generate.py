"""Source of the shipped Kibana objects: ``python -m kibana.generate`` rewrites
``saved_objects.ndjson`` and ``rule_critical_hits.json`` next to this file.

Lens state is verbose; generating it keeps the column ids, layer references and
dashboard panel references consistent. tests/kibana checks that the committed files
match this output and that every field used exists in the index templates.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

HITS_DV = "leaksentry-hits-dataview"
DOCS_DV = "leaksentry-documents-dataview"
LAYER = "layer1"
_META = {"coreMigrationVersion": "8.8.0", "managed": False}
#: the oldest Kibana that imports these objects: Lens and dashboards carry
#: typeMigrationVersion 8.9.0, which Kibana 8.8 and older refuse
MIN_KIBANA = (8, 9)
#: rule ids are uuid5s in this namespace: Kibana before 8.17 refuses a predefined rule id
#: that is not a UUID, and a deterministic one lets `kibana install` find its rule again
RULE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/leaksentry/leaksentry#rule")


def data_view(id_: str, title: str, name: str) -> dict[str, Any]:
    return {"type": "index-pattern", "id": id_, **_META, "typeMigrationVersion": "8.0.0",
            "attributes": {"title": title, "name": name, "timeFieldName": "@timestamp",
                           "allowNoIndex": True, "fieldFormatMap": "{}",
                           "runtimeFieldMap": "{}", "sourceFilters": "[]", "fieldAttrs": "{}"},
            "references": []}


def saved_search(id_: str, title: str, description: str, dv_id: str, kql: str,
                 columns: list[str], sort: list[list[str]]) -> dict[str, Any]:
    source = {"query": {"query": kql, "language": "kuery"}, "filter": [],
              "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index"}
    return {"type": "search", "id": id_, **_META, "typeMigrationVersion": "8.0.0",
            "attributes": {"title": title, "description": description, "columns": columns,
                           "sort": sort, "grid": {}, "hideChart": False,
                           "isTextBasedQuery": False,
                           "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(source)}},
            "references": [{"name": "kibanaSavedObjectMeta.searchSourceJSON.index",
                            "type": "index-pattern", "id": dv_id}]}


def lens(id_: str, title: str, vis_type: str, columns: dict[str, Any],
         column_order: list[str], visualization: dict[str, Any]) -> dict[str, Any]:
    layer = {"columns": columns, "columnOrder": column_order, "incompleteColumns": {}}
    return {"type": "lens", "id": id_, **_META, "typeMigrationVersion": "8.9.0",
            "attributes": {
                "title": title, "description": "", "visualizationType": vis_type,
                "state": {"datasourceStates": {"formBased": {"layers": {LAYER: layer}}},
                          "visualization": visualization,
                          "query": {"query": "", "language": "kuery"}, "filters": [],
                          "internalReferences": [], "adHocDataViews": {}}},
            "references": [{"type": "index-pattern", "id": HITS_DV,
                            "name": "indexpattern-datasource-current-indexpattern"},
                           {"type": "index-pattern", "id": HITS_DV,
                            "name": f"indexpattern-datasource-layer-{LAYER}"}]}


def terms(field: str, label: str, size: int = 10) -> dict[str, Any]:
    return {"label": label, "dataType": "string", "operationType": "terms",
            "scale": "ordinal", "sourceField": field, "isBucketed": True,
            "params": {"size": size, "orderBy": {"type": "column", "columnId": "count"},
                       "orderDirection": "desc", "otherBucket": True,
                       "missingBucket": False}}


def total(field: str, label: str) -> dict[str, Any]:
    return {"label": label, "dataType": "number", "operationType": "sum",
            "sourceField": field, "isBucketed": False, "scale": "ratio",
            "params": {"emptyAsNull": False}}


COUNT = {"label": "Hits", "dataType": "number", "operationType": "count",
         "isBucketed": False, "scale": "ratio", "sourceField": "___records___",
         "params": {"emptyAsNull": True}}


def xy(series: str, x: str, split: str | None = None, legend: bool = True) -> dict[str, Any]:
    layer: dict[str, Any] = {"layerId": LAYER, "layerType": "data", "seriesType": series,
                             "xAccessor": x, "accessors": ["count"]}
    if split:
        layer["splitAccessor"] = split
    return {"preferredSeriesType": series, "legend": {"isVisible": legend,
                                                      "position": "right"},
            "layers": [layer]}


def saved_objects() -> list[dict[str, Any]]:
    hits_columns = ["leaksentry.source", "url.domain", "url.full", "file.name",
                    "leaksentry.matched_records", "leaksentry.kinds",
                    "leaksentry.exposed_categories", "leaksentry.records_key",
                    "leaksentry.evidence.stored"]
    objs = [
        data_view(HITS_DV, "leaksentry-hits", "leaksentry hits"),
        data_view(DOCS_DV, "leaksentry-documents", "leaksentry scanned documents"),
        saved_search(
            "leaksentry-latest-critical-hits", "leaksentry: latest critical hits",
            "Uploads with the most matched register records, newest first.", HITS_DV,
            'leaksentry.severity : "critical"', hits_columns, [["@timestamp", "desc"]]),
        saved_search(
            "leaksentry-hits-by-source", "leaksentry: hits by source",
            "Every hit, grouped by the source that found it.", HITS_DV,
            'event.dataset : "leaksentry.hit"',
            ["leaksentry.source", "leaksentry.severity", "url.domain",
             "leaksentry.matched_records", "leaksentry.exposed_categories",
             "leaksentry.unmatched_valid_total"],
            [["leaksentry.source", "asc"], ["@timestamp", "desc"]]),
        saved_search(
            "leaksentry-scan-failures", "leaksentry: scan failures by source",
            "Scanned documents that were not fully read (encrypted, too large, corrupt,"
            " timeout ...). Source health itself is not indexed; a source failing here again"
            " and again is unhealthy.", DOCS_DV, 'not leaksentry.status : "ok"',
            ["leaksentry.source", "leaksentry.status", "leaksentry.error", "url.full",
             "file.mime_type", "file.size"],
            [["leaksentry.source", "asc"], ["@timestamp", "desc"]]),
        lens("leaksentry-hits-over-time", "leaksentry: hits over time by severity", "lnsXY",
             {"date": {"label": "@timestamp", "dataType": "date",
                       "operationType": "date_histogram", "sourceField": "@timestamp",
                       "isBucketed": True, "scale": "interval",
                       "params": {"interval": "auto", "includeEmptyRows": True}},
              "severity": terms("leaksentry.severity", "Severity", 5), "count": COUNT},
             ["severity", "date", "count"], xy("bar_stacked", "date", split="severity")),
        lens("leaksentry-top-sources", "leaksentry: top sources", "lnsXY",
             {"source": terms("leaksentry.source", "Source"), "count": COUNT},
             ["source", "count"], xy("bar_horizontal", "source", legend=False)),
        lens("leaksentry-top-domains", "leaksentry: top domains", "lnsDatatable",
             {"domain": terms("url.domain", "Domain", 20), "count": COUNT,
              "records": total("leaksentry.matched_records", "Matched records")},
             ["domain", "count", "records"],
             {"layerId": LAYER, "layerType": "data",
              "columns": [{"columnId": "domain"}, {"columnId": "count"},
                          {"columnId": "records"}]}),
        lens("leaksentry-matched-records-total", "leaksentry: matched records total",
             "lnsMetric",
             {"total": total("leaksentry.matched_records", "Matched records (sum over hits)")},
             ["total"], {"layerId": LAYER, "layerType": "data", "metricAccessor": "total"}),
    ]
    objs.append(dashboard([
        ("leaksentry-hits-over-time", "lens", (0, 0, 48, 15)),
        ("leaksentry-top-sources", "lens", (0, 15, 24, 15)),
        ("leaksentry-top-domains", "lens", (24, 15, 24, 15)),
        ("leaksentry-latest-critical-hits", "search", (0, 30, 36, 15)),
        ("leaksentry-matched-records-total", "lens", (36, 30, 12, 15)),
    ]))
    return objs


def dashboard(panels_in: list[tuple[str, str, tuple[int, int, int, int]]]) -> dict[str, Any]:
    panels, refs = [], []
    for i, (oid, typ, (x, y, w, h)) in enumerate(panels_in):
        pid = f"p{i}"
        panels.append({"type": typ, "panelIndex": pid,
                       "gridData": {"x": x, "y": y, "w": w, "h": h, "i": pid},
                       "embeddableConfig": {"enhancements": {}},
                       "panelRefName": f"panel_{pid}"})
        refs.append({"name": f"{pid}:panel_{pid}", "type": typ, "id": oid})
    options = {"useMargins": True, "syncColors": False, "syncCursor": True,
               "syncTooltips": False, "hidePanelTitles": False}
    return {"type": "dashboard", "id": "leaksentry-overview", **_META,
            "typeMigrationVersion": "8.9.0",
            "attributes": {
                "title": "leaksentry: overview",
                "description": "Leaked uploads matching the register: over time, by source"
                               " and domain, and how many records they expose.",
                "timeRestore": True, "timeFrom": "now-30d", "timeTo": "now",
                "refreshInterval": {"pause": False, "value": 60000},
                "optionsJSON": json.dumps(options),
                "panelsJSON": json.dumps(panels),
                "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(
                    {"query": {"query": "", "language": "kuery"}, "filter": []})}},
            "references": refs}


def rule_id(prefix: str = "leaksentry") -> str:
    """The critical-hits rule's id for an index prefix (two deployments with different
    prefixes in one Kibana space get two rules)."""
    return str(uuid.uuid5(RULE_NAMESPACE, f"{prefix}:critical-hits"))


def rule() -> dict[str, Any]:
    """The ``.es-query`` rule: a critical hit *indexed* in the last 5 minutes.

    The time field is ``event.ingested`` (set when the spool delivers the document), not
    ``@timestamp`` (the first sighting): a hit first seen during a cluster outage longer
    than the window is indexed later and must still fire. Re-sightings update the hit
    document without touching ``event.ingested``, so they do not fire again."""
    query = {"query": {"bool": {"filter": [
        {"term": {"leaksentry.severity": "critical"}},
        {"term": {"event.dataset": "leaksentry.hit"}}]}}}
    return {
        "id": rule_id(),
        "name": "leaksentry: critical hit indexed",
        "rule_type_id": ".es-query",
        "consumer": "stackAlerts",
        "tags": ["leaksentry"],
        "schedule": {"interval": "1m"},
        "params": {
            "searchType": "esQuery",
            "index": ["leaksentry-hits"],
            "timeField": "event.ingested",
            "esQuery": json.dumps(query),
            "size": 100,
            "thresholdComparator": ">",
            "threshold": [0],
            "timeWindowSize": 5,
            "timeWindowUnit": "m",
            "excludeHitsFromPreviousRun": True,
            "aggType": "count",
            "groupBy": "all",
        },
        "actions": [],
    }


def ndjson() -> str:
    return "".join(json.dumps(o, separators=(",", ":")) + "\n" for o in saved_objects())


def rule_json() -> str:
    return json.dumps(rule(), indent=2) + "\n"


def main() -> None:
    here = Path(__file__).parent
    (here / "saved_objects.ndjson").write_text(ndjson(), encoding="utf-8")
    (here / "rule_critical_hits.json").write_text(rule_json(), encoding="utf-8")


if __name__ == "__main__":
    main()
