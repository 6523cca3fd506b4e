"""CLI commands: `hits` — the hits in the local store (the embedded default).

Imports inside the command: `leaksentry --help` loads neither the config models
(durations) nor the hit queries' redaction policy (start-up, bench/bench_cli.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from leaksentry.cli.common import ConfigOption, console, settings, shown
from leaksentry.errors import LeakSentryError
from leaksentry.store import Store
from pipelines.model import SEVERITIES


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """``24h``/``7d``/``90m`` (ago) or an ISO 8601 time (UTC when no offset)."""
    from leaksentry.config.base import parse_duration

    now = now or datetime.now(UTC)
    try:
        return now - timedelta(seconds=parse_duration(value))
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise LeakSentryError(f"--since: {value!r} is neither a duration (24h, 7d) nor an"
                              " ISO 8601 time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def register(app: typer.Typer) -> None:
    @app.command("hits")
    def hits_cmd(
        since: Annotated[str | None, typer.Option(
            help="Only hits seen since: a duration ago (24h, 7d) or an ISO time.")] = None,
        min_severity: Annotated[str | None, typer.Option(
            help="Lowest severity: low, medium, high or critical.")] = None,
        source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
        limit: Annotated[int, typer.Option(help="At most N hits, newest first.")] = 100,
        as_json: Annotated[bool, typer.Option(
            "--json", help="JSON Lines, one hit per line.")] = False,
        config: ConfigOption = None,
    ) -> None:
        """Hits in the local state store: masked identifiers and record references only."""
        from pipelines.sinks.local import query_hits

        if min_severity is not None and min_severity not in SEVERITIES[1:]:
            raise LeakSentryError(f"--min-severity: unknown severity {min_severity!r}"
                                  f" (one of {', '.join(SEVERITIES[1:])})")
        when = parse_since(since) if since else None
        s = settings(config)
        store = Store(s.state)
        try:
            rows = query_hits(store.conn, since=when, min_severity=min_severity, source=source,
                              limit=limit)
        finally:
            store.close()
        if as_json:
            for h in rows:
                print(json.dumps(h.to_json(), ensure_ascii=False))
            return
        if not rows:
            console.print("no hits")
            return
        table = Table(title=f"hits ({len(rows)})")
        for col in ("id", "last seen", "severity", "records", "source", "url", "kinds",
                    "exposed", "first records"):
            table.add_column(col, overflow="fold")
        for h in rows:
            refs = ", ".join(h.record_refs[:5]) + (" …" if len(h.record_refs) > 5 else "")
            table.add_row(str(h.hit_id), h.last_seen.strftime("%Y-%m-%d %H:%M"), h.severity,
                          str(h.matched_records), shown(h.source), shown(h.url),
                          shown(",".join(h.kinds)),
                          shown(", ".join(h.exposed_categories) or "-"), shown(refs))
        console.print(table)
