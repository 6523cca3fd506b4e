"""[cluster] configuration: crawl jobs on Celery over Redis (docs/cluster.md).

Without ``broker`` nothing changes: the daemon runs each crawl as a local
subprocess and ``processes = N`` splits a big source over this host's cores.
With it, the daemon (the one scheduler) enqueues each due crawl and
``leaksentry worker`` processes on any host run them.

The visibility timeout is how long Redis keeps a job that a worker took but did
not acknowledge before handing it to another worker (a worker killed mid-crawl):
it must exceed the longest crawl, else a crawl still running would be started
a second time (checked in :class:`leaksentry.config.Settings`).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import Field, field_validator, model_validator

from leaksentry.config.base import Duration, StrictModel, resolve_secret

_QUEUE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class ClusterConfig(StrictModel):
    #: redis://[user@]host:port/db (rediss:// for TLS); unset = single machine
    broker: str | None = None
    #: the Redis password: the variable named here, else LEAKSENTRY_BROKER_PASSWORD
    #: (a password written into ``broker`` works too, but keep secrets out of files)
    password_env: str | None = None
    #: a job taken by a worker that died is handed to another one after this long;
    #: must exceed the longest crawl (timeout + [daemon] timeout_margin + kill_after)
    visibility_timeout: Duration = 7200.0
    #: queue of plain HTTP crawls, and of rendered ones (render = true: needs Chromium)
    http_queue: str = Field("http", pattern=_QUEUE)
    browser_queue: str = Field("browser", pattern=_QUEUE)
    #: directory and bucket sources: items fetched per job (the listing job enqueues
    #: the items in batches of this many, spread over every worker)
    item_batch: int = Field(500, ge=1, le=100000)
    #: Redis keys of the cluster's own bookkeeping (markers, limiter, worker heartbeats)
    key_prefix: str = Field("leaksentry", pattern=_QUEUE)
    #: each worker's /healthz and /metrics (loopback only; 0 = any free port)
    worker_health_host: str = "127.0.0.1"
    worker_health_port: int = Field(9465, ge=0, le=65535)

    @property
    def enabled(self) -> bool:
        return bool(self.broker)

    @field_validator("broker")
    @classmethod
    def _broker(cls, v: str | None) -> str | None:
        if not v:
            return None
        parts = urlsplit(v)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ValueError("must be a redis:// or rediss:// URL with a host"
                             " (e.g. redis://10.0.0.5:6379/0); the cluster's limiter and"
                             " bookkeeping live in Redis")
        return v

    @field_validator("worker_health_host")
    @classmethod
    def _loopback(cls, v: str) -> str:
        if v != "localhost" and not ipaddress.ip_address(v).is_loopback:
            raise ValueError(f"{v} is not a loopback address; /healthz and /metrics are"
                             " unauthenticated")
        return v

    @model_validator(mode="after")
    def _queues_differ(self) -> ClusterConfig:
        if self.http_queue == self.browser_queue:
            raise ValueError("http_queue and browser_queue must differ (browser jobs need"
                             " workers with Chromium)")
        return self

    def broker_url(self) -> str:
        """``broker`` with the password from the environment filled in (never logged)."""
        assert self.broker
        secret = resolve_secret(None, self.password_env, "LEAKSENTRY_BROKER_PASSWORD")
        parts = urlsplit(self.broker)
        if not secret or parts.password:
            return self.broker
        user = quote(parts.username or "", safe="")
        host = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit((parts.scheme, f"{user}:{quote(secret, safe='')}@{host}",
                           parts.path, parts.query, parts.fragment))

    def public_broker(self) -> str:
        """``broker`` without any password, for messages and `status`."""
        if not self.broker:
            return "-"
        parts = urlsplit(self.broker)
        host = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
