"""`kibana install` against a local HTTP receiver.

Kibana itself cannot run on these machines (no Kibana package; it needs a real
Elasticsearch behind it), so this receiver stands in for the two Kibana APIs we
call and checks the request shape the way Kibana does: the ``kbn-xsrf`` header,
auth, a multipart ``file`` field holding NDJSON, ``overwrite=true``, and the
alerting API's create-then-409 behaviour with a PUT update that must not carry
``rule_type_id``/``consumer``.
"""

from __future__ import annotations

import base64
import json
import threading
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from typer.testing import CliRunner

from kibana.install import KibanaError, install
from leaksentry.cli import app
from leaksentry.config.kibana import KibanaConfig


class FakeKibana:
    def __init__(self, api_key: str | None = None, basic: tuple[str, str] | None = None):
        self.api_key, self.basic = api_key, basic
        self.requests: list[dict] = []
        self.objects: dict[tuple[str, str], dict] = {}
        self.rules: dict[str, dict] = {}
        recv = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
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
                if self.command == "POST":
                    if rule_id in recv.rules:
                        return self._reply(409, {"message": f"rule {rule_id} exists"})
                    missing = {"name", "rule_type_id", "consumer", "schedule", "params"} \
                        - body.keys()
                    if missing or "id" in body:
                        return self._reply(400, {"message": f"bad rule body {sorted(missing)}"})
                    recv.rules[rule_id] = body
                    return self._reply(200, {"id": rule_id, **body})
                if self.command == "PUT":
                    if rule_id not in recv.rules:
                        return self._reply(404, {"message": "not found"})
                    if {"rule_type_id", "consumer", "id"} & body.keys():
                        return self._reply(400, {"message": "definition for this key is missing"})
                    recv.rules[rule_id].update(body)
                    return self._reply(200, {"id": rule_id, **recv.rules[rule_id]})
                return self._reply(405, {"message": "method not allowed"})

            do_POST = do_PUT = do_GET = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

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
    imp = k.requests[0]
    assert imp["path"] == "/api/saved_objects/_import" and imp["query"]["overwrite"] == ["true"]
    assert imp["headers"]["kbn-xsrf"]
    second = install(k.url, cfg)
    assert second.rule_action == "updated" and len(k.objects) == 10
    assert [r["method"] for r in k.requests] == ["POST", "POST", "POST", "POST", "PUT"]
    rule = k.rules["leaksentry-critical-hits"]
    assert rule["rule_type_id"] == ".es-query" and rule["params"]["index"] == ["leaksentry-hits"]


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
