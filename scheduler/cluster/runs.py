"""One run of a big source spread over the cluster, recorded once.

A directory or bucket crawl in a cluster is a *listing* job (part 0: it lists the
source once and enqueues its items in batches) and one *items* job per batch
(parts 1..N), possibly on every worker. Each part reports its
:class:`RunSummary` into a Redis hash; the report that completes the set (the
listing has said how many parts there are, and every part is in) records ONE
run — the parts merged by :func:`crawler.shard.merge`, as for ``processes = N``
— and clears the source's in-flight marker. A part re-run after its worker died
overwrites its own field, so nothing is counted twice.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from crawler.shard import merge
from leaksentry.store import Store
from leaksentry.store.unrecorded import record_or_defer
from pipelines.model import summary_from_json, summary_to_json
from scheduler.cluster.state import ClusterState, connect

if TYPE_CHECKING:
    from leaksentry.config import Settings
    from pipelines.model import RunSummary

log = logging.getLogger("leaksentry.scheduler.cluster")

LISTING = 0
#: a recorded run's hash is kept this long (seconds): a late or repeated report of one
#: of its parts sees "recorded" and records nothing
RECORDED_TTL = 3600

# KEYS[1] the run's hash; ARGV: part field, summary, total ('' unknown, 'sent' = the
# parts enqueued so far + the listing), ttl. Returns the parts when this report
# completed the run (exactly once), else nil.
_REPORT = """
redis.call('hset', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] == 'sent' then
  redis.call('hset', KEYS[1], 'total', tonumber(redis.call('hget', KEYS[1], 'sent') or '0') + 1)
elseif ARGV[3] ~= '' then
  redis.call('hset', KEYS[1], 'total', ARGV[3])
end
redis.call('expire', KEYS[1], ARGV[4])
local total = tonumber(redis.call('hget', KEYS[1], 'total') or '-1')
if total < 0 then return nil end
local vals = redis.call('hgetall', KEYS[1])
local parts = {}
for i = 1, #vals, 2 do
  if string.sub(vals[i], 1, 2) == 'p:' then
    table.insert(parts, vals[i]); table.insert(parts, vals[i + 1])
  end
end
if #parts / 2 < total then return nil end
if redis.call('hsetnx', KEYS[1], 'recorded', '1') == 0 then return nil end
return parts
"""


def run_key(settings: Settings, run: str) -> str:
    return f"{settings.cluster.key_prefix}:run:{run}"


def reported(settings: Settings, run: str, part: int) -> bool:
    """Whether the part has reported (or its run is recorded already)."""
    client = connect(settings.cluster)
    try:
        key = run_key(settings, run)
        return bool(client.hexists(key, f"p:{part}") or client.hexists(key, "recorded"))
    finally:
        client.close()


def note_sent(settings: Settings, run: str, parts: int) -> None:
    """How many item parts the listing has enqueued so far (for a listing that dies)."""
    client = connect(settings.cluster)
    try:
        client.hset(run_key(settings, run), "sent", parts)
        client.expire(run_key(settings, run), int(settings.cluster.visibility_timeout * 2))
    finally:
        client.close()


def report_part(settings: Settings, source: str, run: str, part: int, summary: RunSummary,
                total: int | str | None = None) -> RunSummary | None:
    """Report one part; returns the merged run when this report recorded it."""
    client = connect(settings.cluster)
    try:
        got = client.eval(_REPORT, 1, run_key(settings, run), f"p:{part}",
                          summary_to_json(summary), "" if total is None else str(total),
                          int(settings.cluster.visibility_timeout * 2))
        if not got:
            return None
        parts = {int(k[2:]): summary_from_json(v) for k, v in zip(got[::2], got[1::2],
                                                                   strict=True)}
        count = max(parts) + 1
        started = min(p.started_at for p in parts.values())
        finished = max(p.finished_at for p in parts.values())
        merged = merge(source, started, finished, parts, count, label="part")
        _record(settings, merged)
        ClusterState(client, settings.cluster.key_prefix).release(source, run)
        client.expire(run_key(settings, run), RECORDED_TTL)  # "recorded" stays a while
        log.info("run of %s recorded: %d part(s), %s", source, count, merged.outcome,
                 extra={"source": source, "outcome": merged.outcome})
        return merged
    finally:
        client.close()


def _record(settings: Settings, run: RunSummary) -> None:
    src = settings.crawler.effective(settings.source(run.source))
    store = Store(settings.state)
    try:
        record_or_defer(store, run, unhealthy_after=src.unhealthy_after)
    finally:
        store.close()
