"""TLS verification (on by default), a private CA, API keys and basic auth from the
environment, for both backends. A TLS-terminating proxy (trustme certificates) that
checks the Authorization header stands in front of the real osmem-server, which has
neither TLS nor auth of its own."""

from __future__ import annotations

import base64
import json

import pytest
import trustme
from fixtures_osmem import CompatProxy

from leaksentry.config.sinks import ElasticsearchConfig
from pipelines.sinks.client import connect
from pipelines.sinks.setup import check

API_KEY = "bGVha3NlbnRyeTpzZWNyZXQ="
BASIC = "Basic " + base64.b64encode(b"leaksentry:pw").decode()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_front(osmem, ca, tmp_path):
    """HTTPS proxy accepting ``ApiKey API_KEY`` or basic leaksentry:pw, else 401."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    seen: list[str] = []

    def auth(method, path, body, headers):
        got = headers.get("authorization", "")
        seen.append(got.split(" ", 1)[0])
        if got in (f"ApiKey {API_KEY}", BASIC):
            return None
        return 401, json.dumps({"error": {"type": "security_exception",
                                          "reason": "missing authentication"},
                                "status": 401}).encode()

    proxy = CompatProxy(osmem, intercept=auth, ssl_context=ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    proxy.seen = seen  # type: ignore[attr-defined]
    proxy.ca_file = ca_file  # type: ignore[attr-defined]
    yield proxy
    proxy.close()


@pytest.mark.parametrize("backend", ["opensearch", "elasticsearch"])
def test_private_ca_and_api_key_from_env(tls_front, backend, monkeypatch):
    monkeypatch.setenv("LEAKSENTRY_ES_API_KEY", API_KEY)
    cfg = ElasticsearchConfig(url=tls_front.url, backend=backend, ca_cert=tls_front.ca_file)
    report = check(connect(cfg))
    assert report.reachable and report.auth_ok and report.version
    assert "ApiKey" in tls_front.seen


@pytest.mark.parametrize("backend", ["opensearch", "elasticsearch"])
def test_basic_auth_from_named_env(tls_front, backend, monkeypatch):
    monkeypatch.setenv("MY_ES_PW", "pw")
    cfg = ElasticsearchConfig(url=tls_front.url, backend=backend, ca_cert=tls_front.ca_file,
                              username="leaksentry", password_env="MY_ES_PW")
    assert check(connect(cfg)).auth_ok
    assert "Basic" in tls_front.seen


@pytest.mark.filterwarnings("ignore:.*verif")
@pytest.mark.parametrize("backend", ["opensearch", "elasticsearch"])
def test_tls_verified_by_default(tls_front, backend, monkeypatch):
    monkeypatch.setenv("LEAKSENTRY_ES_API_KEY", API_KEY)
    cfg = ElasticsearchConfig(url=tls_front.url, backend=backend, timeout=3)
    assert cfg.verify_tls
    report = check(connect(cfg))
    assert not report.auth_ok and report.problems
    assert tls_front.url.split("//")[1] in report.problems[0]
    assert "\n" not in report.problems[0]
    # switched off explicitly, the untrusted certificate is accepted
    off = check(connect(ElasticsearchConfig(url=tls_front.url, backend=backend,
                                            verify_tls=False)))
    assert off.auth_ok


@pytest.mark.parametrize("backend", ["opensearch", "elasticsearch"])
def test_wrong_credentials_reported_as_auth_failure(tls_front, backend):
    cfg = ElasticsearchConfig(url=tls_front.url, backend=backend, ca_cert=tls_front.ca_file,
                              api_key="wrong")
    report = check(connect(cfg))
    assert report.auth_ok is False and "authentication failed (401)" in report.problems[0]
    assert "wrong" not in report.problems[0]
