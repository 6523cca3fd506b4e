"""Delivering the outbox: due rows go to their channel with exponential backoff
and jitter; after ``max_attempts`` a row is a dead letter (`alerts list`,
`leaksentry status`, `alerts retry`). Due digests are assembled first.

Delivery is at-least-once with a stable idempotency key per (alert, channel),
made from the alert's random uid (unique across installations):
a row is *claimed* (attempt counted, due time pushed past a lease) before it
is sent and marked delivered after, so a worker killed mid-send leaves a row
that is retried once the lease runs out, and the receiver can tell the
repeat by its key. Channel failures never raise out of here.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from leaksentry.store import outbox
from pipelines.alerts.channels import Channel, ChannelError, Outgoing, build_channel
from pipelines.alerts.content import digest_item, digest_payload
from pipelines.model import utcnow

if TYPE_CHECKING:
    from leaksentry.config import Settings
    from leaksentry.store import Store

log = logging.getLogger("leaksentry.alerts")


@dataclass(slots=True)
class DeliveryReport:
    delivered: int = 0
    failed: int = 0  # attempts that failed and will be retried
    dead: int = 0  # rows that became dead letters in this pass
    digests: int = 0  # digests assembled in this pass

    def __str__(self) -> str:
        return (f"{self.delivered} delivered, {self.failed} to retry, {self.dead} dead,"
                f" {self.digests} digest(s) assembled")


def backoff(attempts: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds before the next attempt after ``attempts`` failures: exponential, capped,
    with jitter in [50%, 100%] so a recovered receiver is not hit by a thundering herd."""
    delay = min(cap, base * 2.0 ** max(0, attempts - 1))
    return delay * (0.5 + 0.5 * (rng.random() if rng is not None else random.random()))


def flush_digests(store: Store, settings: Settings, now: datetime) -> int:
    """Turn each channel's batched rows into one digest once the oldest has waited
    ``digest_interval``. Returns the number of digests written."""
    cfg = settings.alerts
    names = {c.name for c in cfg.channels}
    made = 0
    for channel, oldest in outbox.batched_channels(store.conn):
        if channel not in names:  # removed from the config: they would wait forever
            with store.transaction() as tx:
                n = outbox.abandon_batched(tx, channel, f"channel {channel!r} is no longer"
                                           " configured (re-add it, then `alerts retry`)")
            log.error("%d alert(s) waiting for a digest on channel %r: the channel is no"
                      " longer configured; dead letters", n, channel)
            continue
        if oldest + timedelta(seconds=cfg.digest_interval) > now:
            continue
        with store.transaction() as tx:
            members = outbox.batched_for(tx, channel)
            if not members:
                continue
            items = [digest_item(a.id, a.payload) for _, a in members]
            payload = digest_payload(channel, items, members[0][0].created_at, now)
            digest_id = outbox.insert_alert(tx, kind="digest", severity=payload["severity"],
                                            created_at=now, payload=payload)
            outbox.insert_delivery(tx, digest_id, channel, state="pending", now=now)
            outbox.attach_to_digest(tx, [d.id for d, _ in members], digest_id)
        log.info("alert %d: digest of %d alert(s) for channel %r", digest_id, len(items),
                 channel)
        made += 1
    return made


def deliver_pending(store: Store, settings: Settings, now: datetime | None = None, *,
                    senders: Mapping[str, Channel] | None = None,
                    rng: random.Random | None = None, limit: int = 200) -> DeliveryReport:
    """Send what is due (digests first). ``senders`` overrides the channels built from
    config (tests); ``now`` is the clock for due times, backoff and digests."""
    now = now or utcnow()
    cfg = settings.alerts
    report = DeliveryReport(digests=flush_digests(store, settings, now))
    built: dict[str, Channel] = {}
    try:
        for row in outbox.due_deliveries(store.conn, now, limit):
            sender = (senders or {}).get(row.channel) or built.get(row.channel)
            if sender is None:
                try:
                    sender = built[row.channel] = build_channel(cfg.channel(row.channel))
                except Exception as exc:
                    with store.transaction() as tx:
                        outbox.mark_failed(tx, row.id, _one_line(exc), retry_at=None)
                    log.error("alert %d: channel %r unusable, dead letter: %s", row.alert_id,
                              row.channel, _one_line(exc))
                    report.dead += 1
                    continue
            _attempt(store, settings, sender, row, now, rng, report)
    finally:
        for sender in built.values():
            try:
                sender.close()
            except Exception:  # closing must not hide the report
                log.debug("closing channel %r failed", sender.name)
    return report


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


def outgoing(alert: outbox.Alert, channel: str,
             thread: outbox.Alert | None = None) -> Outgoing:
    """``thread``: the first alert of a re-sighting's thread (its key threads the mail)."""
    thread_key = outbox.delivery_key(thread, channel) if thread is not None else None
    return Outgoing(alert_id=alert.id, kind=alert.kind, severity=alert.severity,
                    payload=alert.payload, idempotency_key=outbox.delivery_key(alert, channel),
                    thread_key=thread_key)


def _attempt(store: Store, settings: Settings, sender: Channel, row: outbox.Delivery,
             now: datetime, rng: random.Random | None, report: DeliveryReport) -> None:
    cfg = settings.alerts
    with store.transaction() as tx:
        if not outbox.claim(tx, row.id, now, now + timedelta(seconds=cfg.lease)):
            return  # another worker has it
        alert = outbox.get_alert(tx, row.alert_id)
        claimed = outbox.get_delivery(tx, row.id)
        assert alert is not None and claimed is not None
        thread = outbox.get_alert(tx, alert.thread_id) if alert.thread_id else None
    attempt = claimed.attempts
    try:
        sender.send(outgoing(alert, row.channel, thread))
    except ChannelError as exc:
        error, retryable, after = _one_line(exc), exc.retryable, exc.retry_after
    except Exception as exc:  # a bug or an unexpected library error: retry, never crash
        error, retryable, after = f"channel {row.channel!r}: {type(exc).__name__}", True, None
    else:
        with store.transaction() as tx:
            outbox.mark_delivered(tx, row.id, now)
        log.info("alert %d: delivered to channel %r (attempt %d)", alert.id, row.channel,
                 attempt)
        report.delivered += 1
        return
    if not retryable or attempt >= cfg.max_attempts:
        with store.transaction() as tx:
            outbox.mark_failed(tx, row.id, f"attempt {attempt}: {error}", retry_at=None)
        log.error("alert %d: dead letter for channel %r after %d attempt(s): %s", alert.id,
                  row.channel, attempt, error)
        report.dead += 1
        return
    delay = backoff(attempt, cfg.backoff_base, cfg.backoff_max, rng)
    if after is not None:
        delay = max(delay, min(after, cfg.backoff_max))
    retry_at = now + timedelta(seconds=delay)
    with store.transaction() as tx:
        outbox.mark_failed(tx, row.id, f"attempt {attempt}: {error}", retry_at=retry_at)
    log.warning("alert %d: channel %r attempt %d failed (%s); retry in %ds", alert.id,
                row.channel, attempt, error, int(delay))
    report.failed += 1
