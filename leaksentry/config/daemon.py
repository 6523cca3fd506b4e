"""[daemon] configuration: how `leaksentry run` schedules, logs and reports.

Every interval is a Duration ("30s", "5m", "6h" or seconds). The metrics and
health endpoint only ever binds a loopback address: it is unauthenticated.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator

from leaksentry.config.base import Duration, StrictModel


class DaemonConfig(StrictModel):
    # observability
    metrics: bool = True
    metrics_host: str = "127.0.0.1"
    #: 0 picks a free port; the bound port is written to STATE_DIR/daemon.json
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # crawls
    #: the command that runs one crawl; NAME, --config SNAPSHOT and --config-sha256
    #: HASH are appended (the daemon's validated copy of the config, see docs/daemon.md).
    #: Default: this Python running ``-m leaksentry crawl``. Set it to wrap the
    #: crawl (e.g. ["nice", "-n", "10", "leaksentry", "crawl"]).
    crawl_command: list[str] | None = None
    max_concurrent_crawls: int = Field(default=4, ge=1, le=64)
    #: schedule for a source that sets neither `every` nor `cron`
    default_every: Duration = 300.0
    #: default random delay added to each source run (a source's `jitter` wins)
    jitter: Duration = 0.0
    #: a crawl stops itself at the source's `timeout` (else [crawler] timeout); the
    #: daemon sends SIGTERM to one still running this much later
    timeout_margin: Duration = 60.0
    #: after that SIGTERM, how long a crawl gets before SIGKILL
    kill_after: Duration = 10.0
    #: a run that could not start on time still starts if at most this late
    misfire_grace_time: Duration = 60.0

    # shutdown
    #: on SIGTERM/SIGINT, how long running crawls may finish before they are stopped
    grace_period: Duration = 30.0

    # periodic jobs
    outbox_interval: Duration = 15.0
    spool_interval: Duration = 30.0
    health_interval: Duration = 60.0
    retention_interval: Duration = 21600.0
    #: local hits, documents and spooled data older than this are purged; 0 keeps
    #: everything (Elasticsearch indices follow [elasticsearch] retention)
    retention: Duration = 0.0

    @field_validator("metrics_host")
    @classmethod
    def _loopback(cls, v: str) -> str:
        if v == "localhost":
            return v
        try:
            addr = ipaddress.ip_address(v)
        except ValueError:
            raise ValueError(f"{v!r} is not an IP address (use 127.0.0.1 or ::1)") from None
        if not addr.is_loopback:
            raise ValueError(
                f"{v} is not a loopback address; the metrics endpoint is unauthenticated"
                " (put a reverse proxy in front of it instead)"
            )
        return v

    @field_validator(
        "default_every", "outbox_interval", "spool_interval", "health_interval",
        "retention_interval",
    )
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be greater than zero")
        return v

    @field_validator("crawl_command")
    @classmethod
    def _non_empty(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not v:
            raise ValueError("must name a program (or be left out)")
        return v
