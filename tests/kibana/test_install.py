"""`kibana install` against a local HTTP receiver.

Kibana itself cannot run on these machines (no Kibana package; it needs a real
Elasticsearch behind it), so this receiver stands in for the Kibana APIs we
call and checks the request shape the way Kibana does: the ``kbn-xsrf`` header,
auth, a multipart ``file`` field holding NDJSON, ``overwrite=true``, and the
alerting API's create-then-409 behaviour with a PUT update that must not carry
``rule_type_id``/``consumer``. It answers like the Kibana version it is given
(8.15 by default): ``GET /api/status`` names it; before 8.17 a rule created
with a predefined id that is not a UUID is refused with Kibana's message;
``GET`` of a rule returns its actions as Kibana does (with
``connector_type_id``, which the update API refuses back), and ``PUT``
replaces a rule's actions, as Kibana's update does.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from typer.testing import CliRunner

from kibana.generate import rule_id
from kibana.install import LEGACY_RULE_ID, KibanaError, install
from leaksentry.cli import app
from leaksentry.config.kibana import KibanaConfig

PREDEFINED_ID = ("Predefined IDs are not allowed for saved objects with encrypted attributes"
                 " unless the ID is a UUID.")
ACTION_KEYS = {"group", "id", "params", "frequency", "uuid", "alerts_filter",
               "use_alert_data_as_template"}


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


class FakeKibana:
    def __init__(self, api_key: str | None = None, basic: tuple[str, str] | None = None,
                 version: str = "8.15.2"):
        self.api_key, self.basic = api_key, basic
        self.version = version
        self.requests: list[dict] = []
        self.objects: dict[tuple[str, str], dict] = {}
        self.rules: dict[str, dict] = {}
        self.connectors = {"slack-soc": ".slack", "pager": ".pagerduty"}
        recv = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _reply(self, status: int, body: dict) -> None:
                data = b"" if status == 204 else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                url = urlsplit(self.path)
                recv.requests.append({"method": self.command, "path": url.path,
                                      "query": parse_qs(url.query),
                                      "headers": dict(self.headers)})
                if not self.headers.get("kbn-xsrf"):
                    return self._reply(400, {"message": "Request must contain a kbn-xsrf header."})
                auth = self.headers.get("Authorization", "")
                if recv.api_key and auth != f"ApiKey {recv.api_key}":
                    return self._reply(401, {"message": "Unauthorized"})
                if recv.basic:
                    want = base64.b64encode(":".join(recv.basic).encode()).decode()
                    if auth != f"Basic {want}":
                        return self._reply(401, {"message": "Unauthorized"})
                if url.path.endswith("/api/status") and self.command == "GET":
                    return self._reply(200, {"name": "kibana", "version": {
                        "number": recv.version, "build_flavor": "traditional"},
                        "status": {"overall": {"level": "available"}}})
                if url.path.endswith("/api/saved_objects/_import") and self.command == "POST":
                    return self._import(body, parse_qs(url.query))
                if "/api/alerting/rule/" in url.path:
                    return self._rule(url.path.rsplit("/", 1)[1], json.loads(body or b"{}"))
                return self._reply(404, {"message": "Not Found"})

            def _import(self, body: bytes, query: dict) -> None:
                ctype = self.headers.get("Content-Type", "")
                if not ctype.startswith("multipart/form-data"):
                    return self._reply(415, {"message": "multipart expected"})
                msg = BytesParser(policy=HTTP).parsebytes(
                    f"Content-Type: {ctype}\r\n\r\n".encode() + body)
                parts = {p.get_param("name", header="content-disposition"): p
                         for p in msg.iter_parts()}
                if "file" not in parts:
                    return self._reply(400, {"message": "[file]: expected value of type [object]"})
                fname = parts["file"].get_filename() or ""
                if not fname.endswith(".ndjson"):
                    return self._reply(400, {"message": f"Invalid file extension {fname}"})
                errors, count = [], 0
                for line in parts["file"].get_payload(decode=True).decode().splitlines():
                    o = json.loads(line)
                    key = (o["type"], o["id"])
                    if key in recv.objects and query.get("overwrite") != ["true"]:
                        errors.append({"type": o["type"], "id": o["id"],
                                       "error": {"type": "conflict"}})
                        continue
                    recv.objects[key] = o
                    count += 1
                for o in recv.objects.values():  # references must resolve, as in Kibana
                    for r in o["references"]:
                        if (r["type"], r["id"]) not in recv.objects:
                            errors.append({"type": o["type"], "id": o["id"],
                                           "error": {"type": "missing_references"}})
                self._reply(200, {"success": not errors, "successCount": count,
                                  "errors": errors})

            def _rule(self, rule_id: str, body: dict) -> None:
                major, minor = (int(x) for x in recv.version.split(".")[:2])
                if self.command == "GET":
                    if rule_id not in recv.rules:
                        return self._reply(404, {"message": f"Saved object [alert/{rule_id}]"
                                                            " not found"})
                    return self._reply(200, {"id": rule_id, **recv.rules[rule_id]})
                if self.command == "DELETE":
                    if recv.rules.pop(rule_id, None) is None:
                        return self._reply(404, {"message": "not found"})
                    return self._reply(204, {})
                if self.command == "POST":
                    if rule_id in recv.rules:
                        return self._reply(409, {"message": f"rule {rule_id} exists"})
                    if (major, minor) < (8, 17) and not _is_uuid(rule_id):
                        return self._reply(400, {"statusCode": 400, "error": "Bad Request",
                                                 "message": PREDEFINED_ID})
                    missing = {"name", "rule_type_id", "consumer", "schedule", "params"} \
                        - body.keys()
                    if missing or "id" in body:
                        return self._reply(400, {"message": f"bad rule body {sorted(missing)}"})
                    recv.rules[rule_id] = {**body, "actions": recv.stored_actions(body)}
                    return self._reply(200, {"id": rule_id, **recv.rules[rule_id]})
                if self.command == "PUT":
                    if rule_id not in recv.rules:
                        return self._reply(404, {"message": "not found"})
                    if {"rule_type_id", "consumer", "id"} & body.keys():
                        return self._reply(400, {"message": "definition for this key is missing"})
                    for i, a in enumerate(body.get("actions", [])):
                        extra = set(a) - ACTION_KEYS
                        if extra:
                            return self._reply(400, {"message": f"[request body.actions.{i}."
                                                     f"{sorted(extra)[0]}]: definition for this"
                                                     " key is missing"})
                    # an update replaces the whole definition, actions included
                    recv.rules[rule_id].update({**body, "actions": recv.stored_actions(body)})
                    return self._reply(200, {"id": rule_id, **recv.rules[rule_id]})
                return self._reply(405, {"message": "method not allowed"})

            do_POST = do_PUT = do_GET = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stored_actions(self, body: dict) -> list[dict]:
        """Actions as Kibana keeps and returns them (GET adds connector_type_id)."""
        return [{**a, "uuid": a.get("uuid") or str(uuid.uuid4()),
                 "connector_type_id": self.connectors.get(a["id"], ".unknown")}
                for a in body.get("actions") or []]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def kibana_api_key(monkeypatch):
    monkeypatch.setenv("TEST_KIBANA_KEY", "k3y")
    k = FakeKibana(api_key="k3y")
    yield k
    k.close()


def test_install_imports_objects_and_creates_rule_idempotently(kibana_api_key):
    k = kibana_api_key
    cfg = KibanaConfig(api_key_env="TEST_KIBANA_KEY")
    first = install(k.url, cfg)
    assert first.rule_action == "created" and first.imported == len(k.objects) == 10
    assert first.kibana_version == "8.15.2"
    assert k.requests[0]["path"] == "/api/status"
    imp = k.requests[1]
    assert imp["path"] == "/api/saved_objects/_import" and imp["query"]["overwrite"] == ["true"]
    assert imp["headers"]["kbn-xsrf"]
    # Kibana 8.15 accepted the predefined id: a UUID, the same on every run (uuid5)
    rid = first.rule_id
    assert str(uuid.UUID(rid)) == rid == rule_id("leaksentry") and list(k.rules) == [rid]
    second = install(k.url, cfg)
    assert second.rule_action == "updated" and len(k.objects) == 10 and list(k.rules) == [rid]
    calls = [(r["method"], r["path"].rsplit("/", 1)[-1]) for r in k.requests]
    rule_calls = [c for c in calls if c[1] in (rid, LEGACY_RULE_ID)]
    assert rule_calls == [("GET", rid), ("GET", LEGACY_RULE_ID), ("POST", rid),
                          ("GET", rid), ("GET", LEGACY_RULE_ID), ("PUT", rid)]
    rule = k.rules[rid]
    assert rule["rule_type_id"] == ".es-query" and rule["params"]["index"] == ["leaksentry-hits"]
    assert rule["params"]["timeField"] == "event.ingested"


def test_reinstall_keeps_the_actions_an_operator_added(kibana_api_key):
    """The operator wires connectors to the rule in Kibana; a re-install (after an upgrade)
    updates the rule's definition and sends its actions back, so none is lost."""
    k = kibana_api_key
    cfg = KibanaConfig(api_key_env="TEST_KIBANA_KEY")
    rid = install(k.url, cfg).rule_id
    added = [{"group": "query matched", "id": "slack-soc", "params": {"message": "{{context}}"},
              "frequency": {"summary": False, "notify_when": "onActiveAlert"}},
             {"group": "query matched", "id": "pager", "params": {"severity": "critical"}}]
    k.rules[rid]["actions"] = k.stored_actions({"actions": added})  # as Kibana's UI does
    uuids = [a["uuid"] for a in k.rules[rid]["actions"]]
    k.rules[rid]["params"]["threshold"] = [5]  # drift: the install puts the shipped one back
    again = install(k.url, cfg)
    assert again.rule_action == "updated" and again.actions_kept == 2
    got = k.rules[rid]["actions"]
    assert [(a["id"], a["params"], a["uuid"]) for a in got] == [
        (a["id"], a["params"], u) for a, u in zip(added, uuids, strict=True)]
    assert got[0]["frequency"] == added[0]["frequency"]
    assert k.rules[rid]["params"]["threshold"] == [0]


def test_kibana_8_15_refuses_a_non_uuid_rule_id(kibana_api_key):
    """What the receiver says to the id older leaksentry versions used (the reason for the
    uuid5 id), and a rule left under that id by Kibana >= 8.17 hands its actions over."""
    import httpx

    k = kibana_api_key
    headers = {"kbn-xsrf": "x", "Authorization": "ApiKey k3y"}
    resp = httpx.post(f"{k.url}/api/alerting/rule/{LEGACY_RULE_ID}", headers=headers,
                      json={"name": "x", "rule_type_id": ".es-query", "consumer": "alerts",
                            "schedule": {"interval": "1m"}, "params": {}})
    assert resp.status_code == 400 and "unless the ID is a UUID" in resp.json()["message"]

    k.version = "8.17.0"  # a newer Kibana took the old id from an older leaksentry
    k.rules[LEGACY_RULE_ID] = {"name": "old", "rule_type_id": ".es-query",
                               "consumer": "stackAlerts", "schedule": {"interval": "1m"},
                               "params": {}, "actions": k.stored_actions({"actions": [
                                   {"group": "query matched", "id": "pager", "params": {}}]})}
    report = install(k.url, KibanaConfig(api_key_env="TEST_KIBANA_KEY"))
    assert report.legacy_rule_removed and report.rule_action == "created"
    assert list(k.rules) == [report.rule_id]
    assert [a["id"] for a in k.rules[report.rule_id]["actions"]] == ["pager"]


@pytest.mark.parametrize("version", ["8.8.2", "7.17.9", "2.11.0"])
def test_kibana_older_than_8_9_is_refused(monkeypatch, version):
    monkeypatch.setenv("TEST_KIBANA_KEY", "k3y")
    k = FakeKibana(api_key="k3y", version=version)
    try:
        with pytest.raises(KibanaError, match=rf"Kibana {version} is too old: .* need Kibana"
                                              r" 8\.9 or newer"):
            install(k.url, KibanaConfig(api_key_env="TEST_KIBANA_KEY"))
        assert [r["path"] for r in k.requests] == ["/api/status"]  # nothing imported
        assert not k.objects and not k.rules
    finally:
        k.close()


def test_install_into_a_space_with_basic_auth_and_prefix(monkeypatch):
    k = FakeKibana(basic=("analyst", "pw"))
    try:
        monkeypatch.setenv("LEAKSENTRY_KIBANA_PASSWORD", "pw")
        install(k.url, KibanaConfig(username="analyst", space="soc"), prefix="soc")
        assert all(r["path"].startswith("/s/soc/api/") for r in k.requests)
        titles = {o["attributes"]["title"] for (t, _), o in k.objects.items()
                  if t == "index-pattern"}
        assert titles == {"soc-hits", "soc-documents"}
    finally:
        k.close()


def test_wrong_key_is_one_line_error(kibana_api_key):
    with pytest.raises(KibanaError, match=r"401 Unauthorized \(check the API key"):
        install(kibana_api_key.url, KibanaConfig(api_key="wrong"))


def test_unreachable_kibana_names_the_url():
    with pytest.raises(KibanaError, match=r"127\.0\.0\.1:9: kibana unreachable"):
        install("http://127.0.0.1:9", KibanaConfig(timeout=2))


def test_cli_kibana_install(kibana_api_key, tmp_path):
    cfg = tmp_path / "leaksentry.toml"
    cfg.write_text('[kibana]\napi_key_env = "TEST_KIBANA_KEY"\n')
    res = CliRunner().invoke(app, ["kibana", "install", "--url", kibana_api_key.url,
                                   "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    assert "10 saved objects" in res.output and "created" in res.output
    assert "Kibana 8.15.2" in res.output


def test_cli_refuses_old_kibana_with_one_line(monkeypatch, tmp_path):
    """Through the real CLI process: exit 2 (a configuration-level error), one line."""
    import subprocess
    import sys

    monkeypatch.setenv("TEST_KIBANA_KEY", "k3y")
    k = FakeKibana(api_key="k3y", version="8.8.2")
    try:
        cfg = tmp_path / "leaksentry.toml"
        cfg.write_text(f'[state]\ndir = "{tmp_path}"\n[kibana]\napi_key_env = "TEST_KIBANA_KEY"\n')
        r = subprocess.run([sys.executable, "-m", "leaksentry", "kibana", "install", "--url",
                            k.url, "--config", str(cfg)], capture_output=True, text=True,
                           timeout=60)
    finally:
        k.close()
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "Kibana 8.8.2 is too old" in r.stderr and "8.9 or newer" in r.stderr
