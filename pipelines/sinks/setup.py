"""`leaksentry es setup` and `es check`: templates, retention policy, aliases; health.

Setup is idempotent: PUTs of the same template/policy bodies, and the current
month's indices are created only when missing (so the read aliases exist
before the first hit). Where the server has no ILM (OpenSearch, osmem-server)
or no ISM (osmem-server), setup says so in its report instead of failing, and
retention falls to :func:`drop_expired_indices` (run by every setup), which
deletes whole monthly indices whose month ended more than ``retention`` ago.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from leaksentry.config.sinks import ElasticsearchConfig
from pipelines.sinks.client import Cluster
from pipelines.sinks.ecs import DOCUMENTS, HITS, alias, month_index
from pipelines.sinks.errors import SinkError, UnsupportedFeature
from pipelines.sinks.templates import (
    MAPPINGS,
    TEMPLATE_VERSION,
    ilm_policy,
    index_template,
    ism_policy,
    policy_name,
    template_name,
)

KINDS = (HITS, DOCUMENTS)


@dataclass
class SetupReport:
    templates: list[str] = field(default_factory=list)
    indices_created: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    #: "ilm", "ism" or "none"
    retention: str = "none"
    notes: list[str] = field(default_factory=list)


def setup(cluster: Cluster, now: datetime | None = None) -> SetupReport:
    """Install the retention policy, templates and this month's indices (idempotent)."""
    cfg = cluster.config
    prefix = cfg.index_prefix
    report = SetupReport()
    ilm = None
    if cluster.backend == "elasticsearch":
        try:
            cluster.request("PUT", f"/_ilm/policy/{policy_name(prefix)}",
                            {"policy": ilm_policy(cfg.retention)})
            ilm = policy_name(prefix)
            report.retention = "ilm"
        except UnsupportedFeature:
            report.notes.append("ILM is not supported by this server: indices are not deleted"
                                " automatically; `leaksentry es setup` drops monthly indices"
                                " older than the retention period")
    else:
        report.notes.append("ILM is an Elasticsearch feature; on OpenSearch using ISM")
        try:
            _put_ism(cluster, prefix, cfg.retention)
            report.retention = "ism"
        except UnsupportedFeature:
            report.notes.append("ISM is not supported by this server either (osmem-server):"
                                " `leaksentry es setup` drops monthly indices older than the"
                                " retention period instead")
    for kind in KINDS:
        name = template_name(prefix, kind)
        cluster.request("PUT", f"/_index_template/{name}",
                        index_template(prefix, kind, ilm_policy=ilm))
        report.templates.append(name)
        index = month_index(prefix, kind, now or datetime.now(UTC))
        if _create_index(cluster, index):
            report.indices_created.append(index)
        else:
            _update_mapping(cluster, index, kind, report)
        report.aliases.append(alias(prefix, kind))
    if report.retention == "none":
        dropped = drop_expired_indices(cluster, now=now)
        if dropped:
            report.notes.append("dropped expired indices: " + ", ".join(dropped))
    return report


def _update_mapping(cluster: Cluster, index: str, kind: str, report: SetupReport) -> None:
    """Add the fields a newer template declares to an index made by an older one (the
    month's index outlives an upgrade; with ``dynamic: strict`` it would refuse every
    document carrying a new field until the next month)."""
    body = {"properties": MAPPINGS[kind]()["properties"]}
    try:
        cluster.request("PUT", f"/{index}/_mapping", body)
    except SinkError as exc:
        report.notes.append(f"{index}: mapping not updated ({exc}); documents with new "
                            f"fields are refused until next month's index")


def _put_ism(cluster: Cluster, prefix: str, retention: float) -> None:
    path = f"/_plugins/_ism/policies/{policy_name(prefix)}"
    body = ism_policy(prefix, retention)
    try:
        cluster.request("PUT", path, body)
    except SinkError as exc:
        if exc.status != 409:
            raise
        # exists: update needs its seq_no/primary_term
        cur = cluster.request("GET", path)
        cluster.request("PUT", path, body, params={
            "if_seq_no": cur["_seq_no"], "if_primary_term": cur["_primary_term"]})


def _create_index(cluster: Cluster, index: str) -> bool:
    try:
        cluster.request("PUT", f"/{index}")
        return True
    except SinkError as exc:
        if exc.status == 400 and "already_exists" in str(exc):
            return False
        raise


def ensure_templates(cluster: Cluster) -> None:
    """Install the templates when missing, so a first write never gets a dynamic mapping."""
    prefix = cluster.config.index_prefix
    for kind in KINDS:
        name = template_name(prefix, kind)
        if _template_version(cluster, name) is None:
            cluster.request("PUT", f"/_index_template/{name}", index_template(prefix, kind))


def _template_version(cluster: Cluster, name: str) -> int | None:
    try:
        got = cluster.request("GET", f"/_index_template/{name}")
    except SinkError as exc:
        if exc.status == 404:
            return None
        raise
    for t in got.get("index_templates", []):
        if t.get("name") == name:
            meta = t.get("index_template", {}).get("_meta") or {}
            return int(meta.get("template_version", 0))
    return None


def drop_expired_indices(cluster: Cluster, now: datetime | None = None) -> list[str]:
    """Delete monthly indices whose whole month ended more than ``retention`` ago
    (the fallback where neither ILM nor ISM runs)."""
    cfg = cluster.config
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(seconds=cfg.retention)
    dropped = []
    for kind in KINDS:
        try:
            got = cluster.request("GET", f"/_alias/{alias(cfg.index_prefix, kind)}")
        except SinkError as exc:
            if exc.status == 404:
                continue
            raise
        for index in got:
            month = index.rsplit("-", 1)[-1]
            try:
                start = datetime.strptime(month, "%Y.%m").replace(tzinfo=UTC)
            except ValueError:
                continue
            end = (start + timedelta(days=32)).replace(day=1)
            if end < cutoff:
                cluster.request("DELETE", f"/{index}")
                dropped.append(index)
    return dropped


@dataclass
class CheckReport:
    url: str
    reachable: bool = False
    auth_ok: bool | None = None
    version: str | None = None
    distribution: str | None = None
    templates: dict[str, str] = field(default_factory=dict)  # name -> ok/missing/outdated
    aliases: dict[str, int | None] = field(default_factory=dict)  # alias -> doc count
    spool_depth: int = 0
    spool_rejected: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "reachable": self.reachable, "auth_ok": self.auth_ok,
                "version": self.version, "distribution": self.distribution,
                "templates": self.templates, "aliases": self.aliases,
                "spool_depth": self.spool_depth, "spool_rejected": self.spool_rejected,
                "ok": self.ok, "problems": self.problems}


def check(cluster: Cluster, config: ElasticsearchConfig | None = None) -> CheckReport:
    """Connectivity, version, auth and template state (spool figures are filled by the CLI)."""
    cfg = config or cluster.config
    report = CheckReport(url=cluster.where)
    try:
        info = cluster.request("GET", "/")
    except SinkError as exc:
        report.reachable = not exc.unreachable
        if exc.status in (401, 403):
            report.auth_ok = False
        report.problems.append(str(exc))
        return report
    report.reachable = True
    report.auth_ok = True
    version = info.get("version", {})
    report.version = version.get("number")
    report.distribution = version.get("distribution", "elasticsearch")
    if cluster.backend == "elasticsearch" and report.distribution == "opensearch":
        report.problems.append("the server is OpenSearch: set backend = \"opensearch\"")
    for kind in KINDS:
        name = template_name(cfg.index_prefix, kind)
        try:
            v = _template_version(cluster, name)
        except SinkError as exc:
            report.problems.append(str(exc))
            continue
        state = "missing" if v is None else ("ok" if v >= TEMPLATE_VERSION else "outdated")
        report.templates[name] = state
        if state != "ok":
            report.problems.append(f"index template {name} is {state}: run `leaksentry es setup`")
        a = alias(cfg.index_prefix, kind)
        try:
            report.aliases[a] = int(cluster.request("GET", f"/{a}/_count")["count"])
        except SinkError as exc:
            report.aliases[a] = None
            if exc.status != 404:
                report.problems.append(str(exc))
    return report
