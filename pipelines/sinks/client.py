"""One small interface over the two client libraries.

``backend = "elasticsearch"`` uses the official client (whose major version
must match the server's; it sends the compatibility media type that
OpenSearch refuses), ``backend = "opensearch"`` uses opensearch-py. Both
expose the same ``helpers.streaming_bulk``; everything else the sink needs
(templates, policies, search) goes through :meth:`Cluster.request`, and every
client exception becomes a one-line :class:`SinkError` naming the URL.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from leaksentry.config.sinks import ElasticsearchConfig
from pipelines.sinks.errors import SinkError, UnsupportedFeature

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch
    from opensearchpy import OpenSearch


@dataclass
class Cluster:
    """A connected client plus the backend-specific pieces."""

    config: ElasticsearchConfig
    client: Any
    backend: str

    @property
    def where(self) -> str:
        return ", ".join(_no_userinfo(h) for h in self.config.hosts) or "(no url)"

    # -- raw requests ------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None,
                params: dict[str, Any] | None = None) -> Any:
        """JSON request; a SinkError (status, unreachable) on any failure."""
        try:
            if self.backend == "elasticsearch":
                headers = {"accept": "application/json"}
                if body is not None:
                    headers["content-type"] = "application/json"
                resp = self.client.perform_request(method, path, params=params, headers=headers,
                                                   body=body)
                return resp.body
            return self.client.transport.perform_request(method, path, params=params, body=body)
        except Exception as exc:
            raise self.error(exc, f"{method} {path}") from None

    def error(self, exc: BaseException, what: str) -> SinkError:
        status = _status(exc)
        unreachable = status is None or status in (502, 503, 504)
        reason = _reason(exc)
        if status == 400 and "no handler found" in reason:
            return UnsupportedFeature(f"{self.where}: {what}: not supported by this server",
                                      status=status)
        if status in (401, 403):
            return SinkError(f"{self.where}: {what}: authentication failed ({status}): {reason}",
                             status=status)
        if status is None:
            return SinkError(f"{self.where}: {what}: cluster unreachable: {reason}",
                             unreachable=True)
        return SinkError(f"{self.where}: {what}: {status} {reason}", status=status,
                         unreachable=unreachable)

    # -- bulk --------------------------------------------------------------
    def streaming_bulk(self, actions: Iterable[dict[str, Any]], *, chunk_size: int,
                       max_retries: int, initial_backoff: float,
                       max_backoff: float) -> Iterable[tuple[bool, dict[str, Any]]]:
        """The library's ``helpers.streaming_bulk``: per-item results, 429s retried with
        exponential backoff; item errors are yielded, never raised."""
        kw: dict[str, Any] = dict(chunk_size=chunk_size, max_retries=max_retries,
                                  initial_backoff=initial_backoff, max_backoff=max_backoff,
                                  raise_on_error=False, raise_on_exception=True, yield_ok=True)
        if self.backend == "elasticsearch":
            from elasticsearch import helpers

            return helpers.streaming_bulk(self.client, actions, retry_on_status=(429,), **kw)
        from opensearchpy import helpers as os_helpers

        results: Iterable[tuple[bool, dict[str, Any]]] = os_helpers.streaming_bulk(
            self.client, actions, **kw)
        return results

    def close(self) -> None:
        # closing a dead connection pool must not mask the real outcome
        with contextlib.suppress(Exception):
            self.client.close()


def connect(config: ElasticsearchConfig) -> Cluster:
    """Build the client for ``config`` (no request is made yet)."""
    if not config.enabled:
        raise SinkError("elasticsearch: no url configured ([elasticsearch] url)")
    api_key = config.secret_api_key()
    password = config.secret_password()
    if config.username and not password:
        raise SinkError("elasticsearch: username set but no password (password, password_env"
                        " or LEAKSENTRY_ES_PASSWORD)")
    ca = None
    if config.ca_cert is not None:
        if not config.ca_cert.is_file():
            raise SinkError(f"{config.ca_cert}: elasticsearch.ca_cert not found")
        ca = str(config.ca_cert)
    # a couple of transport-level retries (another node, a dropped connection); bulk
    # items answered 429 are retried by the bulk helper with its own backoff
    kw: dict[str, Any] = {"verify_certs": config.verify_tls, "max_retries": 2,
                          "retry_on_timeout": True}
    if config.backend == "elasticsearch":
        # the backend's client imported when it is used: one of the two is loaded, and
        # `status`/`es --help` (which import this module) load neither (start-up)
        from elasticsearch import Elasticsearch

        kw["request_timeout"] = config.timeout
        if ca:
            kw["ca_certs"] = ca
        if api_key:
            kw["api_key"] = api_key
        elif config.username:
            kw["basic_auth"] = (config.username, password)
        client: Elasticsearch | OpenSearch = Elasticsearch(config.hosts, **kw)
    else:
        from opensearchpy import OpenSearch

        kw.update(timeout=config.timeout, ssl_show_warn=config.verify_tls)
        if ca:
            kw["ca_certs"] = ca
        if api_key:
            kw["headers"] = {"authorization": f"ApiKey {api_key}"}
        elif config.username:
            kw["http_auth"] = (config.username, password)
        client = OpenSearch(config.hosts, **kw)
    return Cluster(config=config, client=client, backend=config.backend)


def _no_userinfo(url: str) -> str:
    """Never print a password embedded in a URL."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        return f"{scheme}://{rest.split('@', 1)[1]}"
    return url


def _status(exc: BaseException) -> int | None:
    meta = getattr(exc, "meta", None)
    status = getattr(meta, "status", None) if meta is not None else None
    if status is None:
        status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _reason(exc: BaseException) -> str:
    info = getattr(exc, "info", None) or getattr(exc, "body", None)
    if isinstance(info, dict):
        err = info.get("error", info)
        if isinstance(err, dict):
            text = f"{err.get('type', '')}: {err.get('reason', '')}".strip(": ")
        else:
            text = str(err)
    elif isinstance(error := getattr(exc, "error", None), str) and error:
        text = error
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())[:300]


def dumps(doc: dict[str, Any]) -> str:
    """Compact JSON, as spooled and sent."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
