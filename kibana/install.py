"""`leaksentry kibana install`: import the saved objects and create the alert rule.

Kibana APIs, over httpx:

- ``GET /api/status``: the Kibana version. The Lens and dashboard objects
  carry ``typeMigrationVersion`` 8.9.0, which Kibana 8.8 and older refuse, so
  older versions are refused up front with one clear line;
- ``POST /api/saved_objects/_import?overwrite=true`` with the NDJSON as the
  multipart ``file`` field and the ``kbn-xsrf`` header — re-running replaces
  the objects, so install is idempotent;
- the ``.es-query`` rule under a deterministic UUID (uuid5 of the index
  prefix: Kibana before 8.17 refuses a predefined id that is not a UUID).
  ``GET /api/alerting/rule/<id>`` first: a new rule is created with ``POST``;
  an existing one is updated with ``PUT`` *carrying the actions it has* (a
  ``PUT`` replaces the rule's actions: sending ``[]`` would wipe the
  connectors an operator added). A rule left by an older leaksentry under the
  old non-UUID id hands its actions over and is deleted, so one rule fires.

With a non-default ``index_prefix`` the data views and the rule are
rewritten to point at that prefix's aliases before upload.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import httpx

from kibana.generate import MIN_KIBANA, rule_id
from leaksentry.config.kibana import KibanaConfig
from leaksentry.errors import LeakSentryError

SAVED_OBJECTS = "saved_objects.ndjson"
RULE = "rule_critical_hits.json"
DEFAULT_PREFIX = "leaksentry"
#: fields the alerting update API accepts (rule_type_id and consumer cannot change)
RULE_UPDATABLE = ("name", "tags", "schedule", "params", "actions")
#: keys of an action (as GET returns it) that the update API accepts back
ACTION_KEYS = ("group", "id", "params", "frequency", "uuid", "alerts_filter",
               "use_alert_data_as_template")
#: the rule id of leaksentry versions before the UUID ids
LEGACY_RULE_ID = "leaksentry-critical-hits"


class KibanaError(LeakSentryError):
    """Kibana refused the import or the rule, or could not be reached."""


@dataclass
class InstallReport:
    imported: int = 0
    objects: list[str] = field(default_factory=list)
    rule_id: str = ""
    rule_action: str = ""  # "created" or "updated"
    kibana_version: str = ""
    actions_kept: int = 0  # connectors an operator added, carried over on update
    legacy_rule_removed: bool = False


def load_objects(prefix: str = DEFAULT_PREFIX) -> list[dict[str, Any]]:
    """The shipped saved objects, pointed at ``prefix``'s aliases."""
    text = resources.files("kibana").joinpath(SAVED_OBJECTS).read_text("utf-8")
    objects = [json.loads(line) for line in text.splitlines() if line.strip()]
    if prefix != DEFAULT_PREFIX:
        for o in objects:
            if o["type"] == "index-pattern":
                title = o["attributes"]["title"]
                o["attributes"]["title"] = prefix + title[len(DEFAULT_PREFIX):]
    return objects


def load_rule(prefix: str = DEFAULT_PREFIX) -> dict[str, Any]:
    rule: dict[str, Any] = json.loads(resources.files("kibana").joinpath(RULE).read_text("utf-8"))
    rule["id"] = rule_id(prefix)
    if prefix != DEFAULT_PREFIX:
        rule["params"]["index"] = [prefix + i[len(DEFAULT_PREFIX):]
                                   for i in rule["params"]["index"]]
    return rule


def _client(url: str, cfg: KibanaConfig) -> httpx.Client:
    headers = {"kbn-xsrf": "leaksentry"}
    auth = None
    api_key = cfg.secret_api_key()
    if api_key:
        headers["Authorization"] = f"ApiKey {api_key}"
    elif cfg.username:
        password = cfg.secret_password()
        if not password:
            raise KibanaError("kibana: username set but no password (password, password_env"
                              " or LEAKSENTRY_KIBANA_PASSWORD)")
        auth = httpx.BasicAuth(cfg.username, password)
    verify: Any = cfg.verify_tls
    if cfg.ca_cert and cfg.verify_tls:
        if not cfg.ca_cert.is_file():
            raise KibanaError(f"{cfg.ca_cert}: kibana.ca_cert not found")
        verify = str(cfg.ca_cert)
    base = url.rstrip("/")
    if cfg.space:
        base += f"/s/{cfg.space}"
    return httpx.Client(base_url=base, headers=headers, auth=auth, verify=verify,
                        timeout=cfg.timeout)


def _fail(url: str, what: str, resp: httpx.Response) -> KibanaError:
    try:
        body = resp.json()
        reason = body.get("message") or body.get("error") or json.dumps(body)[:200]
    except ValueError:
        reason = resp.text[:200]
    hint = " (check the API key or credentials)" if resp.status_code in (401, 403) else ""
    return KibanaError(f"{url}: {what}: {resp.status_code} {' '.join(str(reason).split())}{hint}")


def install(url: str, cfg: KibanaConfig | None = None,
            prefix: str = DEFAULT_PREFIX) -> InstallReport:
    """Import the saved objects (overwrite) and create or update the rule."""
    cfg = cfg or KibanaConfig()
    if not url.startswith(("http://", "https://")):
        raise KibanaError(f"{url}: kibana url must start with http:// or https://")
    objects = load_objects(prefix)
    ndjson = "".join(json.dumps(o, separators=(",", ":")) + "\n" for o in objects)
    rule = load_rule(prefix)
    rid = rule.pop("id")
    report = InstallReport(rule_id=rid)
    try:
        with _client(url, cfg) as http:
            report.kibana_version = check_version(http, url)
            resp = http.post("/api/saved_objects/_import", params={"overwrite": "true"},
                             files={"file": ("leaksentry.ndjson", ndjson.encode(),
                                             "application/ndjson")})
            if resp.status_code != 200:
                raise _fail(url, "saved objects import", resp)
            body = resp.json()
            if not body.get("success", False):
                errs = body.get("errors") or []
                first = "; ".join(f"{e.get('type')}/{e.get('id')}: "
                                  f"{(e.get('error') or {}).get('type', 'error')}"
                                  for e in errs[:3])
                raise KibanaError(f"{url}: saved objects import failed for {len(errs)}"
                                  f" object(s): {first}")
            report.imported = int(body.get("successCount", len(objects)))
            report.objects = [f"{o['type']}/{o['id']}" for o in objects]

            _install_rule(http, url, rid, rule, report)
    except httpx.HTTPError as exc:
        raise KibanaError(f"{url}: kibana unreachable: {type(exc).__name__}: {exc}") from None
    return report


def _version_tuple(text: str) -> tuple[int, int] | None:
    m = re.match(r"(\d+)\.(\d+)", text or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def check_version(http: httpx.Client, url: str) -> str:
    """``GET /api/status``: refuse a Kibana older than the saved objects need."""
    resp = http.get("/api/status")
    if resp.status_code != 200:
        raise _fail(url, "status", resp)
    try:
        number = str((resp.json().get("version") or {}).get("number") or "")
    except (ValueError, AttributeError):
        number = ""
    got = _version_tuple(number)
    if got is None:
        raise KibanaError(f"{url}: /api/status names no Kibana version (is this Kibana, and"
                          " may this user read the status?)")
    if got < MIN_KIBANA:
        need = ".".join(map(str, MIN_KIBANA))
        raise KibanaError(f"{url}: Kibana {number} is too old: the dashboard and Lens objects"
                          f" need Kibana {need} or newer (typeMigrationVersion 8.9.0);"
                          " upgrade Kibana (OpenSearch Dashboards is not supported)")
    return number


def _get_rule(http: httpx.Client, url: str, rid: str) -> dict[str, Any] | None:
    resp = http.get(f"/api/alerting/rule/{rid}")
    if resp.status_code == 404 or (resp.status_code == 400 and rid == LEGACY_RULE_ID):
        return None
    if resp.status_code != 200:
        raise _fail(url, f"alert rule {rid}", resp)
    rule: dict[str, Any] = resp.json()
    return rule


def _kept_actions(existing: dict[str, Any]) -> list[dict[str, Any]]:
    """The rule's actions as the update API takes them back."""
    return [{k: a[k] for k in ACTION_KEYS if k in a} for a in existing.get("actions") or []]


def _install_rule(http: httpx.Client, url: str, rid: str, rule: dict[str, Any],
                  report: InstallReport) -> None:
    path = f"/api/alerting/rule/{rid}"
    existing = _get_rule(http, url, rid)
    legacy = _get_rule(http, url, LEGACY_RULE_ID) if rid != LEGACY_RULE_ID else None
    if existing is None:
        if legacy is not None:  # its connectors move to the new rule (new action uuids)
            rule = {**rule, "actions": [{k: v for k, v in a.items() if k != "uuid"}
                                        for a in _kept_actions(legacy)]}
        resp = http.post(path, json=rule)
        if resp.status_code == 409:  # created meanwhile: update it
            existing = _get_rule(http, url, rid)
        elif resp.status_code not in (200, 201):
            raise _fail(url, f"alert rule {rid}", resp)
        else:
            report.rule_action = "created"
            report.actions_kept = len(rule.get("actions") or [])
    if existing is not None:
        update = {k: rule[k] for k in RULE_UPDATABLE if k in rule}
        update["actions"] = _kept_actions(existing)
        resp = http.put(path, json=update)
        if resp.status_code not in (200, 201):
            raise _fail(url, f"alert rule {rid}", resp)
        report.rule_action = "updated"
        report.actions_kept = len(update["actions"])
    if legacy is not None:
        resp = http.delete(f"/api/alerting/rule/{LEGACY_RULE_ID}")
        if resp.status_code not in (200, 204, 404):
            raise _fail(url, f"alert rule {LEGACY_RULE_ID} (old id)", resp)
        report.legacy_rule_removed = True
