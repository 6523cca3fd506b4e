"""`leaksentry kibana install`: import the saved objects and create the alert rule.

Two Kibana APIs, over httpx:

- ``POST /api/saved_objects/_import?overwrite=true`` with the NDJSON as the
  multipart ``file`` field and the ``kbn-xsrf`` header — re-running replaces
  the objects, so install is idempotent;
- ``POST /api/alerting/rule/<id>`` creates the ``.es-query`` rule under a
  fixed id; a 409 means it exists, and ``PUT`` on the same id updates it.

With a non-default ``index_prefix`` the data views and the rule are
rewritten to point at that prefix's aliases before upload.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import httpx

from leaksentry.config.kibana import KibanaConfig
from leaksentry.errors import LeakSentryError

SAVED_OBJECTS = "saved_objects.ndjson"
RULE = "rule_critical_hits.json"
DEFAULT_PREFIX = "leaksentry"
#: fields the alerting update API accepts (rule_type_id and consumer cannot change)
RULE_UPDATABLE = ("name", "tags", "schedule", "params", "actions")


class KibanaError(LeakSentryError):
    """Kibana refused the import or the rule, or could not be reached."""


@dataclass
class InstallReport:
    imported: int = 0
    objects: list[str] = field(default_factory=list)
    rule_id: str = ""
    rule_action: str = ""  # "created" or "updated"


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
    rule = json.loads(resources.files("kibana").joinpath(RULE).read_text("utf-8"))
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
    rule_id = rule.pop("id")
    report = InstallReport(rule_id=rule_id)
    try:
        with _client(url, cfg) as http:
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

            path = f"/api/alerting/rule/{rule_id}"
            resp = http.post(path, json=rule)
            if resp.status_code == 409:
                resp = http.put(path, json={k: rule[k] for k in RULE_UPDATABLE if k in rule})
                report.rule_action = "updated"
            else:
                report.rule_action = "created"
            if resp.status_code not in (200, 201):
                raise _fail(url, f"alert rule {rule_id}", resp)
    except httpx.HTTPError as exc:
        raise KibanaError(f"{url}: kibana unreachable: {type(exc).__name__}: {exc}") from None
    return report
