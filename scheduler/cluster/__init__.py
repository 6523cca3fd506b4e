"""Crawl jobs on Celery over Redis, when ``[cluster] broker`` is set (docs/cluster.md).

The daemon stays the one scheduler and enqueues due crawls (:mod:`.enqueue`);
``leaksentry worker`` runs them, each in a fresh ``leaksentry crawl`` process
(:mod:`.worker`); the cluster's own bookkeeping (in-flight markers, queue lag,
worker heartbeats, the per-source limiter) lives in Redis (:mod:`.state`,
:mod:`.limiter`). Celery and redis are imported only here, never at the CLI's
top level (start-up time of every other command).
"""
