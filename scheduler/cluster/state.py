"""The cluster's bookkeeping in Redis, next to Celery's queues.

- ``PREFIX:inflight:SOURCE`` — the source's job is queued or running (value: its
  job id; expires after the visibility timeout): the daemon does not enqueue a
  second one, like ``max_instances = 1`` on one machine.
- ``PREFIX:queued:QUEUE`` — a sorted set of queued job ids by enqueue time: the
  queue's lag is the age of its oldest job.
- ``PREFIX:worker:NAME`` — each worker's heartbeat (JSON, expires unless renewed):
  queues, concurrency, jobs running, its /healthz address.

Celery's own queue is the Redis list named after the queue (kombu's layout), so
its depth is ``LLEN QUEUE``. Nothing here carries an identifier.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis

    from leaksentry.config.cluster import ClusterConfig

#: a worker whose heartbeat is older than this is gone (its key expires then too)
HEARTBEAT_TTL = 15
HEARTBEAT_EVERY = 3.0


def connect(cluster: ClusterConfig, timeout: float = 3.0) -> redis.Redis:
    """A Redis client on the broker (short timeouts: status and metrics must not hang)."""
    import redis

    return redis.Redis.from_url(cluster.broker_url(), socket_timeout=timeout,
                                socket_connect_timeout=timeout, decode_responses=True,
                                health_check_interval=30)


@dataclass
class QueueStatus:
    name: str
    depth: int  # jobs waiting
    lag_seconds: float | None  # age of the oldest waiting job


@dataclass
class WorkerStatus:
    name: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: float
    seen_at: float
    health_url: str | None = None
    refusing: str | None = None  # why this worker gives its jobs back
    running: list[dict[str, Any]] = field(default_factory=list)  # source, job_id, started_at


@dataclass
class ClusterStatus:
    broker: str
    reachable: bool
    error: str | None = None
    workers: list[WorkerStatus] = field(default_factory=list)
    queues: list[QueueStatus] = field(default_factory=list)
    inflight: list[str] = field(default_factory=list)  # sources with a job queued or running

    @property
    def oldest_job_age(self) -> float | None:
        """Seconds since the oldest running job started (None: nothing runs)."""
        now = time.time()
        starts = [float(j["started_at"]) for w in self.workers for j in w.running]
        return now - min(starts) if starts else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["oldest_job_age"] = self.oldest_job_age
        return d


class ClusterState:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.r = client
        self.prefix = prefix

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # -- in-flight markers (the daemon's max_instances = 1 across the cluster) ------
    def claim(self, source: str, job_id: str, ttl: float) -> bool:
        """Mark the source's job in flight; False when one already is."""
        return bool(self.r.set(self._k("inflight", source), job_id, nx=True,
                               ex=max(1, int(ttl))))

    def release(self, source: str, job_id: str) -> None:
        """Clear the marker, only if it is still this job's."""
        self.r.eval("if redis.call('get', KEYS[1]) == ARGV[1] then"
                    " return redis.call('del', KEYS[1]) else return 0 end",
                    1, self._k("inflight", source), job_id)

    def refresh(self, source: str, job_id: str, ttl: float) -> None:
        """Keep the marker of a run whose parts are still starting (a fan-out run lasts
        longer than one job: its marker expires ``ttl`` after its last part started)."""
        self.r.eval("if redis.call('get', KEYS[1]) == ARGV[1] then"
                    " return redis.call('expire', KEYS[1], ARGV[2]) else return 0 end",
                    1, self._k("inflight", source), job_id, max(1, int(ttl)))

    def inflight(self) -> list[str]:
        n = len(self._k("inflight", ""))
        return sorted(k[n:] for k in self.r.scan_iter(self._k("inflight", "*"), count=500))

    # -- queue lag ------------------------------------------------------------------
    def queued(self, queue: str, job_id: str, at: float) -> None:
        self.r.zadd(self._k("queued", queue), {job_id: at})

    def started(self, queue: str, job_id: str) -> None:
        self.r.zrem(self._k("queued", queue), job_id)

    # -- workers --------------------------------------------------------------------
    def heartbeat(self, w: WorkerStatus) -> None:
        w.seen_at = time.time()
        self.r.set(self._k("worker", w.name), json.dumps(asdict(w)), ex=HEARTBEAT_TTL)

    def gone(self, name: str) -> None:
        self.r.delete(self._k("worker", name))

    def workers(self) -> list[WorkerStatus]:
        keys = sorted(self.r.scan_iter(self._k("worker", "*"), count=500))
        out = []
        for raw in self.r.mget(keys) if keys else []:
            if raw:
                out.append(WorkerStatus(**json.loads(raw)))
        return out

    # -- everything, for `status` and the metrics -----------------------------------
    def snapshot(self, queues: list[str]) -> list[QueueStatus]:
        now = time.time()
        out = []
        for q in queues:
            depth = int(self.r.llen(q))
            oldest = self.r.zrange(self._k("queued", q), 0, 0, withscores=True)
            lag = now - float(oldest[0][1]) if oldest and depth else None
            out.append(QueueStatus(q, depth, lag))
        return out


def cluster_status(cluster: ClusterConfig) -> ClusterStatus:
    """What the cluster looks like now; an unreachable Redis is a status, not an error."""
    import redis

    st = ClusterStatus(broker=cluster.public_broker(), reachable=False)
    client = connect(cluster, timeout=2.0)
    try:
        state = ClusterState(client, cluster.key_prefix)
        st.queues = state.snapshot([cluster.http_queue, cluster.browser_queue])
        st.workers = state.workers()
        st.inflight = state.inflight()
        st.reachable = True
    except redis.RedisError as exc:
        st.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        client.close()
    return st
