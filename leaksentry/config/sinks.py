"""[elasticsearch] configuration: where hits are indexed for analysts.

Off unless ``url`` (or ``urls``) is set: the local SQLite store is the
embedded default. Secrets (API key, password) may be given in the file or,
better, read from the environment: ``api_key_env``/``password_env`` name the
variables, and ``LEAKSENTRY_ES_API_KEY`` / ``LEAKSENTRY_ES_PASSWORD`` are
read when neither the file nor a named variable provides one.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from leaksentry.config.base import Duration, HttpServiceConfig

_PREFIX = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class ElasticsearchConfig(HttpServiceConfig):
    SECRET_ENV_PREFIX = "LEAKSENTRY_ES"

    #: one cluster URL, or several in ``urls`` (nodes of the same cluster)
    url: str | None = None
    urls: list[str] = Field(default_factory=list)
    #: "elasticsearch" uses the official client (pin its major to the server's);
    #: "opensearch" uses opensearch-py (OpenSearch, and osmem-server in tests)
    backend: Literal["elasticsearch", "opensearch"] = "elasticsearch"
    #: index names: <prefix>-hits-YYYY.MM behind alias <prefix>-hits, same for -documents
    index_prefix: str = "leaksentry"
    #: indices (ILM where supported) and local spooled data older than this are deleted
    retention: Duration = 365 * 86400.0
    #: documents per bulk request
    chunk_size: int = Field(default=1000, ge=1, le=50_000)
    #: retries of a bulk item answered 429 (with exponential backoff from initial_backoff)
    max_retries: int = Field(default=5, ge=0, le=50)
    initial_backoff: Duration = 1.0
    max_backoff: Duration = 60.0
    #: replicas of each monthly index; 0 only for a single-node cluster (where a replica
    #: cannot be placed and the indices would stay yellow), else a node loss loses data
    number_of_replicas: int = Field(default=1, ge=0, le=10)

    @field_validator("index_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not _PREFIX.match(v):
            raise ValueError("must be lower-case letters, digits, '_', '-' or '.', max 64")
        return v

    @model_validator(mode="after")
    def _auth(self) -> ElasticsearchConfig:
        if self.password and not self.username:
            raise ValueError("password given without username")
        for u in self.hosts:
            if not u.startswith(("http://", "https://")):
                raise ValueError(f"url {u!r} must start with http:// or https://")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.url or self.urls)

    @property
    def hosts(self) -> list[str]:
        return ([self.url] if self.url else []) + list(self.urls)
