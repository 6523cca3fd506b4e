"""`leaksentry es setup` and `es check`: templates, retention policy, aliases; health.

The retention policy and the two index templates are **one unit**
(:func:`install`): the policy goes in first, then the templates that attach it
(ILM: the ``index.lifecycle.name`` setting; ISM: the policy's own
``ism_template``), then indices that already exist are brought in line (the
policy attached, new fields added to their mapping, the replica count). Both
``es setup`` and the spool's :func:`ensure_installed` (run by every drain) go
through it, so indices created by a first delivery before anyone ran ``es
setup`` still expire.

The policy API is chosen by the server's distribution: ILM on Elasticsearch,
ISM on OpenSearch. Where the server has neither (osmem-server, the test
server; managed clusters that forbid them), the policy part is skipped with a
note saying so, and retention falls to :func:`drop_expired_indices` (run by
every setup), which deletes whole monthly indices whose month ended more than
``retention`` ago.

``es check`` compares the *content* of what is installed with what this
version would install (:func:`inspect`), not only ``_meta.template_version``:
a hand-edited template, a changed ``number_of_replicas`` or ``retention``, or
a policy someone altered in Kibana all show as ``outdated``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from leaksentry.config.sinks import ElasticsearchConfig
from pipelines.sinks.client import Cluster
from pipelines.sinks.ecs import DOCUMENTS, HITS, alias, month_index
from pipelines.sinks.errors import SinkError, UnsupportedFeature
from pipelines.sinks.templates import (
    WILDCARD_SINCE,
    ilm_policy,
    index_template,
    ism_policy,
    policy_name,
    template_name,
)

log = logging.getLogger(__name__)

KINDS = (HITS, DOCUMENTS)


# -- the server ------------------------------------------------------------------------

@dataclass(frozen=True)
class ServerInfo:
    distribution: str  # "elasticsearch" or "opensearch"
    version: str

    @property
    def version_tuple(self) -> tuple[int, int]:
        m = re.match(r"(\d+)\.(\d+)", self.version or "")
        return (int(m.group(1)), int(m.group(2))) if m else (0, 0)

    @property
    def policy_api(self) -> str:
        """``ilm`` (Elasticsearch) or ``ism`` (OpenSearch)."""
        return "ism" if self.distribution == "opensearch" else "ilm"

    def wildcard_problem(self) -> str | None:
        """Why the templates cannot be installed here (the ``wildcard`` type), or None."""
        need = WILDCARD_SINCE.get(self.distribution, WILDCARD_SINCE["elasticsearch"])
        if self.version_tuple >= need:
            return None
        name = "OpenSearch" if self.distribution == "opensearch" else "Elasticsearch"
        return (f"{name} {self.version or '(unknown version)'} has no `wildcard` field type"
                f" (url.full uses it): leaksentry needs Elasticsearch >= 7.9 or"
                f" OpenSearch >= 2.15 — {name} >= {need[0]}.{need[1]} here")


def server_info(cluster: Cluster) -> ServerInfo:
    info = cluster.request("GET", "/")
    v = info.get("version", {}) if isinstance(info, dict) else {}
    return ServerInfo(distribution=v.get("distribution", "elasticsearch"),
                      version=str(v.get("number", "")))


# -- expected content ----------------------------------------------------------------

def expected_template(cfg: ElasticsearchConfig, kind: str, policy_api: str) -> dict[str, Any]:
    ilm = policy_name(cfg.index_prefix) if policy_api == "ilm" else None
    return index_template(cfg.index_prefix, kind, ilm_policy=ilm,
                          replicas=cfg.number_of_replicas)


def expected_policy(cfg: ElasticsearchConfig, policy_api: str) -> dict[str, Any]:
    """The policy body as PUT (ILM: ``{"policy": ...}``; ISM: ``{"policy": ...}``)."""
    if policy_api == "ilm":
        return {"policy": ilm_policy(cfg.retention)}
    return ism_policy(cfg.index_prefix, cfg.retention)


def _policy_path(api: str, name: str) -> str:
    return f"/_ilm/policy/{name}" if api == "ilm" else f"/_plugins/_ism/policies/{name}"


# -- comparing content -----------------------------------------------------------------

def _norm(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def _first_diff(want: Any, got: Any, path: str, exact: bool) -> str | None:
    """The first place ``got`` differs from ``want``. ``exact``: same keys both ways (a
    template is stored as sent); else ``want``'s keys only (servers add defaults to
    policies, e.g. ``delete_searchable_snapshot``)."""
    where = path or "(root)"
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return f"{where}: expected an object"
        for k in want:
            if k not in got:
                return f"{path + '.' if path else ''}{k}: missing"
            d = _first_diff(want[k], got[k], f"{path + '.' if path else ''}{k}", exact)
            if d:
                return d
        if exact:
            extra = sorted(set(got) - set(want))
            if extra:
                return f"{path + '.' if path else ''}{extra[0]}: not expected"
        return None
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return f"{where}: differs"
        for i, (w, g) in enumerate(zip(want, got, strict=True)):
            d = _first_diff(w, g, f"{path}[{i}]", exact)
            if d:
                return d
        return None
    return None if _norm(want) == _norm(got) else f"{where}: {_norm(got)} (expected {_norm(want)})"


def _flat_settings(settings: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in settings.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat_settings(v, key + "."))
        else:
            out[key if key.startswith("index.") else "index." + key] = _norm(v)
    return out


def _template_view(t: dict[str, Any]) -> dict[str, Any]:
    """The parts of a composable template we own, in a comparable form."""
    inner = t.get("template") or {}
    return {"index_patterns": t.get("index_patterns"), "priority": t.get("priority"),
            "settings": _flat_settings(inner.get("settings") or {}),
            "mappings": inner.get("mappings") or {}, "aliases": inner.get("aliases") or {},
            "_meta": t.get("_meta") or {}}


def _get_template(cluster: Cluster, name: str) -> dict[str, Any] | None:
    try:
        got = cluster.request("GET", f"/_index_template/{name}")
    except SinkError as exc:
        if exc.status == 404:
            return None
        raise
    for t in got.get("index_templates", []):
        if t.get("name") == name:
            return t.get("index_template") or {}
    return None


def _get_policy(cluster: Cluster, api: str, name: str) -> dict[str, Any] | None:
    """The installed policy body (the part we PUT), None when missing; UnsupportedFeature
    when the server has no such API (or forbids it)."""
    try:
        got = cluster.request("GET", _policy_path(api, name))
    except SinkError as exc:
        if exc.status == 404:
            return None
        if exc.status in (401, 403):
            raise UnsupportedFeature(f"{exc} (not permitted for this user)",
                                     status=exc.status) from None
        raise
    policy: dict[str, Any] | None = ((got.get(name) or {}) if api == "ilm" else got).get("policy")
    return policy


@dataclass
class UnitState:
    """What is installed, compared with what this version installs."""

    server: ServerInfo
    #: "ilm", "ism" or "none" (the server has neither, or forbids it)
    retention: str = "none"
    #: ok / missing / outdated / unsupported
    policy: str = "unsupported"
    policy_note: str | None = None
    templates: dict[str, str] = field(default_factory=dict)  # name -> ok/missing/outdated
    differences: dict[str, str] = field(default_factory=dict)  # name -> first difference

    @property
    def ok(self) -> bool:
        return self.policy in ("ok", "unsupported") and all(
            s == "ok" for s in self.templates.values())


def inspect(cluster: Cluster, server: ServerInfo | None = None) -> UnitState:
    """Compare the installed policy and templates with the expected content."""
    cfg = cluster.config
    server = server or server_info(cluster)
    state = UnitState(server=server)
    api = server.policy_api
    pname = policy_name(cfg.index_prefix)
    try:
        got = _get_policy(cluster, api, pname)
        state.retention = api
        want = expected_policy(cfg, api)["policy"]
        if got is None:
            state.policy = "missing"
        else:
            diff = _first_diff(want, got, "", exact=False)
            state.policy = "outdated" if diff else "ok"
            if diff:
                state.differences[pname] = diff
    except UnsupportedFeature as exc:
        state.policy_note = _no_policy_note(api, exc)
    for kind in KINDS:
        name = template_name(cfg.index_prefix, kind)
        got_t = _get_template(cluster, name)
        if got_t is None:
            state.templates[name] = "missing"
            continue
        want_t = expected_template(cfg, kind, state.retention)
        diff = _first_diff(_template_view(want_t), _template_view(got_t), "", exact=True)
        state.templates[name] = "outdated" if diff else "ok"
        if diff:
            state.differences[name] = diff
    return state


def _no_policy_note(api: str, exc: SinkError) -> str:
    what = "ILM" if api == "ilm" else "ISM"
    why = "not permitted for this user" if exc.status in (401, 403) else \
        "not supported by this server"
    return (f"{what} is {why}: indices are not deleted by the server; `leaksentry es setup`"
            f" and the daemon's retention job drop monthly indices whose month ended more"
            f" than `retention` ago")


# -- installing ------------------------------------------------------------------------

@dataclass
class InstallReport:
    retention: str = "none"
    policy: str | None = None
    templates: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def install(cluster: Cluster, state: UnitState | None = None) -> InstallReport:
    """Install the policy and the templates together, then bring existing indices in line
    (policy attached, mapping fields added, replica count). Idempotent."""
    cfg = cluster.config
    prefix = cfg.index_prefix
    state = state or inspect(cluster)
    report = InstallReport(retention=state.retention)
    pname = policy_name(prefix)
    if state.retention != "none":
        if state.policy != "ok":
            _put_policy(cluster, state.retention, pname, expected_policy(cfg, state.retention))
        report.policy = pname
    elif state.policy_note:
        report.notes.append(state.policy_note)
    for kind in KINDS:
        name = template_name(prefix, kind)
        body = expected_template(cfg, kind, state.retention)
        if state.templates.get(name) != "ok":
            cluster.request("PUT", f"/_index_template/{name}", body)
        report.templates.append(name)
        for index in _indices(cluster, alias(prefix, kind)):
            report.notes.extend(_align_index(cluster, index, body, state.retention, pname))
    return report


def _put_policy(cluster: Cluster, api: str, name: str, body: dict[str, Any]) -> None:
    path = _policy_path(api, name)
    if api == "ilm":
        cluster.request("PUT", path, body)
        return
    try:
        cluster.request("PUT", path, body)
    except SinkError as exc:
        if exc.status != 409:
            raise
        # an ISM policy exists: its update needs the current seq_no/primary_term
        cur = cluster.request("GET", path)
        cluster.request("PUT", path, body, params={
            "if_seq_no": cur["_seq_no"], "if_primary_term": cur["_primary_term"]})


def _indices(cluster: Cluster, name: str) -> list[str]:
    try:
        return sorted(cluster.request("GET", f"/_alias/{name}"))
    except SinkError as exc:
        if exc.status == 404:
            return []
        raise


def _align_index(cluster: Cluster, index: str, template: dict[str, Any], retention: str,
                 pname: str) -> list[str]:
    """An existing monthly index: add new mapping fields, set the replica count and attach
    the policy (indices created before the policy existed must still expire)."""
    notes = []
    mappings = template["template"]["mappings"]
    try:
        cluster.request("PUT", f"/{index}/_mapping", mappings)
    except SinkError as exc:
        notes.append(f"{index}: mapping not updated ({exc}); the next monthly index has it")
    index_settings: dict[str, Any] = {
        "number_of_replicas": template["template"]["settings"]["number_of_replicas"]}
    if retention == "ilm":
        index_settings["lifecycle"] = {"name": pname}
    try:
        cluster.request("PUT", f"/{index}/_settings", {"index": index_settings})
    except SinkError as exc:
        notes.append(f"{index}: settings not updated ({exc})")
    if retention == "ism":
        try:
            got = cluster.request("POST", f"/_plugins/_ism/add/{index}", {"policy_id": pname})
        except SinkError as exc:
            notes.append(f"{index}: ISM policy not attached ({exc})")
        else:
            for f in got.get("failed_indices") or []:
                reason = str(f.get("reason", ""))
                if "already" not in reason.lower():  # managed already: fine
                    notes.append(f"{index}: ISM policy not attached ({reason})")
    return notes


def ensure_installed(cluster: Cluster) -> list[str]:
    """Before a delivery: install the policy + templates unit when anything is missing or
    outdated, so a first write never gets a dynamic mapping or an index that never expires.
    Returns notes (e.g. "ILM is not supported")."""
    state = inspect(cluster)
    problem = state.server.wildcard_problem()
    if problem:
        raise SinkError(problem, status=400)
    if state.ok:
        return [state.policy_note] if state.policy_note else []
    log.info("elasticsearch: installing the retention policy and index templates (%s)",
             ", ".join(f"{k} {v}" for k, v in {"policy": state.policy,
                                                 **state.templates}.items()))
    return install(cluster, state).notes


# -- es setup ----------------------------------------------------------------------------

@dataclass
class SetupReport:
    templates: list[str] = field(default_factory=list)
    indices_created: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    #: "ilm", "ism" or "none"
    retention: str = "none"
    server: str = ""
    notes: list[str] = field(default_factory=list)


def setup(cluster: Cluster, now: datetime | None = None) -> SetupReport:
    """Check the server version, install the policy + templates unit and this month's
    indices (idempotent)."""
    cfg = cluster.config
    prefix = cfg.index_prefix
    server = server_info(cluster)
    problem = server.wildcard_problem()
    if problem:
        raise SinkError(f"{cluster.where}: {problem}", status=400)
    installed = install(cluster, inspect(cluster, server))
    report = SetupReport(templates=installed.templates, retention=installed.retention,
                         server=f"{server.distribution} {server.version}",
                         notes=list(installed.notes))
    for kind in KINDS:
        index = month_index(prefix, kind, now or datetime.now(UTC))
        if _create_index(cluster, index):
            report.indices_created.append(index)
        report.aliases.append(alias(prefix, kind))
    if report.retention == "none":
        dropped = drop_expired_indices(cluster, now=now)
        if dropped:
            report.notes.append("dropped expired indices: " + ", ".join(dropped))
    return report


def _create_index(cluster: Cluster, index: str) -> bool:
    try:
        cluster.request("PUT", f"/{index}")
        return True
    except SinkError as exc:
        if exc.status == 400 and "already_exists" in str(exc):
            return False
        raise


def drop_expired_indices(cluster: Cluster, now: datetime | None = None) -> list[str]:
    """Delete monthly indices whose whole month ended more than ``retention`` ago
    (the fallback where neither ILM nor ISM runs)."""
    cfg = cluster.config
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(seconds=cfg.retention)
    dropped = []
    for kind in KINDS:
        for index in _indices(cluster, alias(cfg.index_prefix, kind)):
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


# -- es check ----------------------------------------------------------------------------

@dataclass
class CheckReport:
    url: str
    reachable: bool = False
    auth_ok: bool | None = None
    version: str | None = None
    distribution: str | None = None
    retention: str | None = None  # ilm / ism / none
    policy: str | None = None  # ok / missing / outdated / unsupported
    templates: dict[str, str] = field(default_factory=dict)  # name -> ok/missing/outdated
    aliases: dict[str, int | None] = field(default_factory=dict)  # alias -> doc count
    spool_depth: int = 0
    spool_rejected: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add_spool(self, depth: int, rejected: int) -> None:
        self.spool_depth, self.spool_rejected = depth, rejected
        if rejected:
            self.problems.append(f"{rejected} document(s) refused by the cluster: see"
                                 " `leaksentry es spool` (then --requeue after a fix)")

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "reachable": self.reachable, "auth_ok": self.auth_ok,
                "version": self.version, "distribution": self.distribution,
                "retention": self.retention, "policy": self.policy,
                "templates": self.templates, "aliases": self.aliases,
                "spool_depth": self.spool_depth, "spool_rejected": self.spool_rejected,
                "ok": self.ok, "problems": self.problems, "notes": self.notes}


def check(cluster: Cluster, config: ElasticsearchConfig | None = None) -> CheckReport:
    """Connectivity, version, auth, policy and template content, aliases (spool figures
    are added by the CLI). Every problem lands in ``problems``; notes are not problems."""
    cfg = config or cluster.config
    report = CheckReport(url=cluster.where)
    try:
        server = server_info(cluster)
    except SinkError as exc:
        report.reachable = not exc.unreachable
        if exc.status in (401, 403):
            report.auth_ok = False
        report.problems.append(str(exc))
        return report
    report.reachable = True
    report.auth_ok = True
    report.version, report.distribution = server.version, server.distribution
    if cluster.backend == "elasticsearch" and server.distribution == "opensearch":
        report.problems.append("the server is OpenSearch: set backend = \"opensearch\"")
    wildcard = server.wildcard_problem()
    if wildcard:
        report.problems.append(wildcard)
    try:
        state = inspect(cluster, server)
    except SinkError as exc:
        report.problems.append(str(exc))
        return report
    report.retention, report.policy = state.retention, state.policy
    report.templates = dict(state.templates)
    pname = policy_name(cfg.index_prefix)
    if state.policy_note:
        report.notes.append(state.policy_note)
    elif state.policy != "ok":
        why = f" ({state.differences[pname]})" if pname in state.differences else ""
        report.problems.append(f"{state.retention.upper()} policy {pname} is {state.policy}"
                               f"{why}: run `leaksentry es setup`")
    for name, st in state.templates.items():
        if st != "ok":
            why = f" ({state.differences[name]})" if name in state.differences else ""
            report.problems.append(f"index template {name} is {st}{why}: run"
                                   " `leaksentry es setup`")
    for kind in KINDS:
        a = alias(cfg.index_prefix, kind)
        try:
            report.aliases[a] = int(cluster.request("GET", f"/{a}/_count")["count"])
        except SinkError as exc:
            report.aliases[a] = None
            if exc.status == 404:
                report.problems.append(f"alias {a} is missing: run `leaksentry es setup`")
            else:
                report.problems.append(str(exc))
    _replica_note(cluster, cfg, report)
    return report


def _replica_note(cluster: Cluster, cfg: ElasticsearchConfig, report: CheckReport) -> None:
    try:
        nodes = int(cluster.request("GET", "/_cluster/health").get("number_of_data_nodes", 0))
    except (SinkError, TypeError, ValueError):
        return
    if nodes and cfg.number_of_replicas >= nodes:
        report.notes.append(
            f"number_of_replicas = {cfg.number_of_replicas} but the cluster has {nodes} data"
            f" node(s): replicas cannot be placed and the indices stay yellow"
            + (" (set number_of_replicas = 0 on a single-node cluster)" if nodes == 1 else ""))
    elif nodes > 1 and cfg.number_of_replicas == 0:
        report.notes.append(f"number_of_replicas = 0 on a {nodes}-node cluster: losing one node"
                            " loses the indices' data (0 is meant for a single node)")
