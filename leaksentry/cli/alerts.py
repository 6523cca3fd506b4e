"""CLI commands: `alerts test CHANNEL`, `alerts list`, `alerts retry`.

The alert channels are imported inside `alerts test`: `leaksentry --help` answers
without loading httpx, smtplib and the senders (start-up, bench/bench_cli.py).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated

import typer

from leaksentry.cli.common import ConfigOption, console, settings, shown
from leaksentry.errors import LeakSentryError
from leaksentry.store import Store, outbox
from pipelines.model import utcnow


def _t(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S")


class AlertDeliveryError(LeakSentryError):
    """A test alert could not be delivered."""


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Alert channels and the alert outbox.", no_args_is_help=True)
    app.add_typer(group, name="alerts")

    @group.command("test")
    def test_cmd(
        channel: Annotated[str, typer.Argument(help="Channel name from [[alerts.channels]].")],
        config: ConfigOption = None,
    ) -> None:
        """Send a test alert to CHANNEL now (not through the outbox)."""
        from pipelines.alerts.channels import ChannelError, Outgoing, build_channel
        from pipelines.alerts.content import test_payload

        s = settings(config)
        sender = build_channel(s.alerts.channel(channel))
        now = utcnow()
        key = f"leaksentry-test-{uuid.uuid4()}-{channel}"
        message = Outgoing(alert_id=0, kind="test", severity="low",
                           payload={**test_payload(channel, now), "alert_id": key},
                           idempotency_key=key)
        try:
            sender.send(message)
        except ChannelError as exc:
            raise AlertDeliveryError(f"test alert not delivered: {exc}") from None
        finally:
            sender.close()
        console.print(f"test alert delivered to channel {channel!r}")

    @group.command("list")
    def list_cmd(
        config: ConfigOption = None,
        state: Annotated[str | None, typer.Option(
            help="Only this state: " + ", ".join(outbox.STATES))] = None,
        limit: Annotated[int, typer.Option(help="Most recent N rows.")] = 50,
        as_json: Annotated[bool, typer.Option("--json", help="JSON Lines.")] = False,
    ) -> None:
        """The alert outbox: one row per alert and channel, newest first."""
        if state and state not in outbox.STATES:
            raise LeakSentryError(f"--state: unknown state {state!r}"
                                  f" (one of {', '.join(outbox.STATES)})")
        s = settings(config)
        store = Store(s.state)
        rows = outbox.deliveries(store.conn, state=state, limit=limit)
        counts = outbox.outbox_counts(store.conn)
        if as_json:
            for d, a in rows:
                print(json.dumps({
                    "delivery": d.id, "alert": a.id, "kind": a.kind, "severity": a.severity,
                    "source": a.source, "channel": d.channel, "state": d.state,
                    "attempts": d.attempts, "next_attempt_at": d.next_attempt_at.isoformat(),
                    "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
                    "last_error": d.last_error, "created_at": d.created_at.isoformat(),
                    "thread": a.thread_id,
                }))
            return
        # one block per delivery: readable at any terminal width
        for d, a in rows:
            what = f"alert {a.id} {a.kind}" + (f" of alert {a.thread_id}" if a.thread_id else "")
            line = (f"#{d.id}  {what} ({a.severity}, {a.source or '-'}) -> {d.channel}:"
                    f" {d.state}, {d.attempts} attempt(s), created {_t(d.created_at)}")
            if d.delivered_at:
                line += f", delivered {_t(d.delivered_at)}"
            elif d.state in outbox.ACTIVE:
                line += f", next {_t(d.next_attempt_at)}"
            console.print(shown(line), highlight=False, soft_wrap=True)
            if d.last_error:
                console.print(shown(f"    last error: {d.last_error}"), highlight=False,
                              soft_wrap=True)
        if not rows:
            console.print("the outbox is empty" + (f" (state {state})" if state else ""))
        console.print(", ".join(f"{k}: {v}" for k, v in counts.items()))

    @group.command("retry")
    def retry_cmd(
        config: ConfigOption = None,
        ids: Annotated[list[int] | None, typer.Argument(
            help="Delivery ids (from `alerts list`); default: every dead letter.")] = None,
    ) -> None:
        """Re-queue dead letters with a fresh attempt budget; the daemon sends them."""

        s = settings(config)
        store = Store(s.state)
        with store.transaction() as tx:
            n = outbox.requeue_dead(tx, utcnow(), ids or None)
        console.print(f"{n} dead letter(s) re-queued")
