"""The Celery app both sides use, and the job message.

Settings that make a killed worker lose nothing (REFERENCE.md, "Celery and
friends"): ``task_acks_late`` (a job is acknowledged when it finished, not when
it was taken), ``task_reject_on_worker_lost`` and Redis's ``visibility_timeout``
(a job taken by a worker that died goes back to the queue after that long; it
exceeds the longest crawl, checked by the config). ``worker_prefetch_multiplier
= 1``: a worker takes no job it cannot start now, so an idle worker gets it.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celery import Celery

    from leaksentry.config import Settings
    from leaksentry.config.cluster import ClusterConfig
    from leaksentry.config.sources import SourceConfig
    from scheduler.snapshot import ConfigSnapshot

#: the one task name; the job's ``kind`` says what to run
TASK = "leaksentry.crawl"


def make_app(cluster: ClusterConfig, name: str = "leaksentry") -> Celery:
    from celery import Celery

    app = Celery(name, broker=cluster.broker_url(), set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        task_default_queue=cluster.http_queue,
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options={"visibility_timeout": int(cluster.visibility_timeout)},
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker keeps reconnecting to Redis
        broker_connection_timeout=5,
        # the daemon must not block a scheduler thread on a Redis that is down
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0,
                                   "interval_step": 0.5, "interval_max": 1},
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    return app


def queue_for(source: SourceConfig, cluster: ClusterConfig) -> str:
    """Rendered sources need Chromium: they go to the browser queue."""
    return cluster.browser_queue if source.rendered else cluster.http_queue


@dataclass
class Job:
    """One queued unit of work: a crawl of a source, or (``kind = "items"``) one batch
    of a big source's items. It carries the leader's config (its text and SHA-256),
    so every worker crawls with exactly the config the leader scheduled with."""

    source: str
    config: str  # the config file's text ("" = built-in defaults)
    config_sha256: str
    queue: str
    kind: str = "crawl"  # crawl | items
    job_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    enqueued_at: float = field(default_factory=time.time)
    #: items jobs: the run they belong to, their part number and the items
    run: str | None = None
    part: int | None = None
    items: list[dict[str, Any]] = field(default_factory=list)

    def to_message(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> Job:
        return cls(**data)

    def check(self) -> None:
        """The config arrived intact (else the job is refused)."""
        if hashlib.sha256(self.config.encode("utf-8")).hexdigest() != self.config_sha256:
            raise ValueError("the job's config does not match its SHA-256")


def config_snapshot(settings: Settings, snapshot: ConfigSnapshot | None = None
                    ) -> tuple[str, str]:
    """(text, sha256) of the config a job carries: the daemon's validated snapshot
    (scheduler.snapshot), else the file the settings came from (a crawl process,
    which was handed its file with its hash)."""
    if snapshot is not None:
        raw = snapshot.path.read_bytes()
        if hashlib.sha256(raw).hexdigest() != snapshot.sha256:
            raise ValueError(f"{snapshot.path}: config snapshot changed on disk")
    else:
        raw = settings.path.read_bytes() if settings.path is not None else b""
    return raw.decode("utf-8"), hashlib.sha256(raw).hexdigest()
