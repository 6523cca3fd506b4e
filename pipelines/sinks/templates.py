"""Index templates (explicit, strict mappings), aliases and retention policies.

``dynamic: strict`` means a field the template does not declare is refused
(the bulk item fails and is recorded) instead of silently growing the mapping:
no mapping surprises, and no stray field can smuggle content in. Monthly
indices (``<prefix>-hits-YYYY.MM``) are created on first write by the
template, which also attaches the read alias ``<prefix>-hits`` — analysts and
Kibana search the alias, retention drops whole months.
"""

from __future__ import annotations

from typing import Any

from pipelines.sinks.ecs import DOCUMENTS, HITS, alias

KW: dict[str, Any] = {"type": "keyword", "ignore_above": 1024}
DATE: dict[str, Any] = {"type": "date"}
INT: dict[str, Any] = {"type": "integer"}
LONG: dict[str, Any] = {"type": "long"}
FLOAT: dict[str, Any] = {"type": "float"}
BOOL: dict[str, Any] = {"type": "boolean"}
TEXT: dict[str, Any] = {"type": "text"}
#: kept in _source (Discover shows it) but not indexed: the per-match list, minor counters
SHOWN: dict[str, Any] = {"type": "object", "enabled": False}

#: content of a document that could not be read (pipelines.model.Skipped)
SKIPPED: dict[str, Any] = {"properties": {"where": KW, "status": KW, "error": TEXT}}

#: bumped when a mapping changes; stored in the template's _meta (`es check` compares the
#: whole content, so a hand-edited template is found too). 4: exposed_fields and
#: exposed_categories on hits; 5: skipped and partial on hits and documents
TEMPLATE_VERSION = 5
#: the ``wildcard`` field type (``url.full``) exists from these server versions on
WILDCARD_SINCE = {"elasticsearch": (7, 9), "opensearch": (2, 15)}


def _obj(**props: dict[str, Any]) -> dict[str, Any]:
    return {"properties": props}


def _common_ecs() -> dict[str, Any]:
    return {
        "@timestamp": DATE,
        "ecs": _obj(version=KW),
        # ingested: set by the spool on delivery; the Kibana rule's time field
        "event": _obj(kind=KW, category=KW, type=KW, outcome=KW, severity=LONG,
                      risk_score=FLOAT, created=DATE, ingested=DATE, dataset=KW, module=KW,
                      provider=KW),
        "url": _obj(full={"type": "wildcard"}, domain=KW),
        "file": _obj(name=KW, size=LONG, mime_type=KW, hash=_obj(sha256=KW)),
        "observer": _obj(type=KW, product=KW, vendor=KW, version=KW),
        "tags": KW,
    }


def hits_mapping() -> dict[str, Any]:
    props = _common_ecs()
    props.update({
        "message": TEXT,
        "rule": _obj(id=KW, name=KW),
        "related": _obj(hash=KW),
        "leaksentry": _obj(
            source=KW, item_id=KW, path=KW, severity=KW, status=KW, matched_records=INT,
            record_refs=KW, records_key=KW, kinds=KW, unmatched_valid_total=INT,
            last_seen=DATE, sightings=INT, snippets=TEXT, partial=BOOL, skipped=SKIPPED,
            detail=SHOWN,
            evidence=_obj(stored=BOOL, sha256=KW, size=LONG, error=TEXT),
            # what the upload exposed: field labels and their categories (name, gender ...)
            exposed_fields=KW, exposed_categories=KW,
        ),
    })
    return {"dynamic": "strict", "properties": props}


def documents_mapping() -> dict[str, Any]:
    props = _common_ecs()
    props["leaksentry"] = _obj(
        source=KW, item_id=KW, path=KW, status=KW, error=TEXT, severity=KW, hit=BOOL,
        matched_records=INT, partial=BOOL, skipped=SKIPPED, detail=SHOWN,
    )
    return {"dynamic": "strict", "properties": props}


MAPPINGS = {HITS: hits_mapping, DOCUMENTS: documents_mapping}


def template_name(prefix: str, kind: str) -> str:
    return f"{prefix}-{kind}"


def policy_name(prefix: str) -> str:
    return f"{prefix}-retention"


def index_template(prefix: str, kind: str, *, ilm_policy: str | None = None,
                   replicas: int = 1) -> dict[str, Any]:
    """The composable index template body for ``<prefix>-<kind>-*``; with ``ilm_policy``
    new indices are attached to that ILM policy (the policy and the templates are
    installed together by :func:`pipelines.sinks.setup.install`)."""
    settings: dict[str, Any] = {"number_of_shards": 1, "number_of_replicas": replicas}
    if ilm_policy:
        settings["index.lifecycle.name"] = ilm_policy
    return {
        "index_patterns": [f"{prefix}-{kind}-*"],
        "priority": 200,
        "template": {
            "settings": settings,
            "mappings": MAPPINGS[kind](),
            "aliases": {alias(prefix, kind): {}},
        },
        "_meta": {"managed_by": "leaksentry", "template_version": TEMPLATE_VERSION},
    }


def _age(seconds: float) -> str:
    return f"{max(1, round(seconds / 3600))}h"


def ilm_policy(retention_seconds: float) -> dict[str, Any]:
    """Elasticsearch ILM: keep each monthly index ``retention`` after its creation, then delete.

    No rollover (the month is in the index name), so ages count from index creation."""
    return {
        "phases": {
            "hot": {"min_age": "0ms", "actions": {}},
            "delete": {"min_age": _age(retention_seconds), "actions": {"delete": {}}},
        },
        "_meta": {"managed_by": "leaksentry"},
    }


def ism_policy(prefix: str, retention_seconds: float) -> dict[str, Any]:
    """OpenSearch ISM equivalent, attached to new indices through ``ism_template``."""
    return {
        "policy": {
            "description": "leaksentry: delete indices after the retention period",
            "default_state": "hot",
            "states": [
                {"name": "hot", "actions": [], "transitions": [
                    {"state_name": "delete",
                     "conditions": {"min_index_age": _age(retention_seconds)}}]},
                {"name": "delete", "actions": [{"delete": {}}], "transitions": []},
            ],
            "ism_template": [{"index_patterns": [f"{prefix}-{k}-*" for k in (HITS, DOCUMENTS)],
                              "priority": 100}],
        }
    }
