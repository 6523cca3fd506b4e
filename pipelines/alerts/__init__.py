"""Alerts to the security team: delivered, deduplicated, never lost.

- :mod:`~pipelines.alerts.planner` — ``plan_alerts``: rules, dedupe, digests and
  rate limits, writing outbox rows in the hit's own transaction.
- :mod:`~pipelines.alerts.worker` — ``deliver_pending``: backoff with jitter,
  idempotency keys, dead letters, digest assembly.
- :mod:`~pipelines.alerts.health` — ``plan_health_alerts``: one alert per
  source that turns unhealthy, one recovery notice.
- :mod:`~pipelines.alerts.content` / :mod:`~pipelines.alerts.render` — what an
  alert says (masked identifiers only) and how each channel shows it.
- :mod:`~pipelines.alerts.channels` — email, webhook, Slack, Teams, syslog.

The outbox tables live in :mod:`leaksentry.store.outbox`; see docs/alerts.md.
"""
