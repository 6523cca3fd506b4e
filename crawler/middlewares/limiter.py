"""A source's politeness across every process of a cluster run, held in Redis.

On one machine Scrapy's download slot keeps a source's ``concurrency`` and
``delay``. When the items of one source are fetched by several workers at once
(scheduler.cluster), each process has its own slot, so the limit moves to Redis:
a semaphore with leases (a sorted set of lease ids scored by their expiry: a
process that dies frees its leases when they expire) and the time of the next
allowed request (``delay``). Both are checked and taken in one Lua script, on
Redis's clock (hosts' clocks may differ). A request holds its lease from just
before the download until its response or failure.

Enabled by the ``LEAKSENTRY_LIMITER`` setting (crawler.runner sets it for
crawls run by a cluster worker); otherwise this middleware is not loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest, NotConfigured

log = logging.getLogger(__name__)

# KEYS: leases (zset), next allowed time (ms); ARGV: lease, concurrency, delay ms, lease ms.
# Returns 0 when granted, else the milliseconds to wait before asking again.
_ACQUIRE = """
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
if redis.call('zcard', KEYS[1]) >= tonumber(ARGV[2]) then return 20 end
local nxt = tonumber(redis.call('get', KEYS[2]) or '0')
if nxt > now then return nxt - now end
redis.call('zadd', KEYS[1], now + tonumber(ARGV[4]), ARGV[1])
redis.call('pexpire', KEYS[1], tonumber(ARGV[4]) + 1000)
if tonumber(ARGV[3]) > 0 then
  redis.call('set', KEYS[2], now + tonumber(ARGV[3]), 'PX', tonumber(ARGV[3]) + 1000)
end
return 0
"""

#: how long a request waits for Redis when it cannot be reached before it is given up
#: (the item is re-queued with backoff, like any failed download)
UNREACHABLE_WAIT = 30.0


class ClusterLimiterMiddleware:
    def __init__(self, conf: dict[str, Any]) -> None:
        # redis is imported by cluster crawls only: every crawl loads this module (the
        # middleware then says NotConfigured), and the import costs ~65 ms of start-up
        import redis

        self.r = redis.Redis.from_url(conf["url"], socket_timeout=5, socket_connect_timeout=5)
        self.leases_key = f"{conf['key']}:leases"
        self.next_key = f"{conf['key']}:next"
        self.concurrency = int(conf["concurrency"])
        self.delay_ms = int(float(conf.get("delay") or 0) * 1000)
        self.lease_ms = int(float(conf["lease"]) * 1000)
        self._acquire = self.r.register_script(_ACQUIRE)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ClusterLimiterMiddleware:
        conf = crawler.settings.get("LEAKSENTRY_LIMITER")
        if not conf:
            raise NotConfigured
        return cls(conf)

    async def process_request(self, request: Any, spider: Any = None) -> None:
        import redis

        lease = uuid.uuid4().hex
        down_since: float | None = None
        while True:
            try:
                wait_ms = int(self._acquire(keys=[self.leases_key, self.next_key],
                                            args=[lease, self.concurrency, self.delay_ms,
                                                  self.lease_ms]))
                down_since = None
            except redis.RedisError as exc:
                down_since = down_since or time.monotonic()
                if time.monotonic() - down_since > UNREACHABLE_WAIT:
                    raise IgnoreRequest(f"cluster limiter unreachable ({type(exc).__name__})"
                                        ) from None
                wait_ms = 1000
            if wait_ms <= 0:
                request.meta["ls_lease"] = lease
                return None
            await asyncio.sleep(min(wait_ms, 1000) / 1000)

    def _release(self, request: Any) -> None:
        import redis

        lease = request.meta.pop("ls_lease", None)
        if lease:
            with contextlib.suppress(redis.RedisError):  # else the lease expires
                self.r.zrem(self.leases_key, lease)

    def process_response(self, request: Any, response: Any, spider: Any = None) -> Any:
        self._release(request)
        return response

    def process_exception(self, request: Any, exception: BaseException,
                          spider: Any = None) -> None:
        self._release(request)
        return None
