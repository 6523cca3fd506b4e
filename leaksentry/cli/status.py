"""`leaksentry status`: sources, their last and next runs and health, outbox and spool.

Works with or without a running daemon: everything is read from the state
directory (see scheduler/status.py).

Imports inside the command: `leaksentry --help` does not load the status reader
(APScheduler, the config models) (start-up, bench/bench_cli.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from leaksentry.cli.common import ConfigOption, console, settings, shown


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _when(ts: str | None, now: datetime) -> str:
    """An ISO time as '5m ago' or 'in 2h' (the JSON output keeps the ISO times)."""
    if not ts:
        return "-"
    delta = (datetime.fromisoformat(ts) - now).total_seconds()
    return f"in {_span(delta)}" if delta > 0 else f"{_span(-delta)} ago"


def status(
    config: ConfigOption = None,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Show each source's last run, next run and health, and the outbox and spool depths."""
    from scheduler.status import collect_status

    st = collect_status(settings(config))
    if as_json:
        print(json.dumps(st.to_dict(), sort_keys=True))
        return
    if st.daemon_pid:
        where = f", metrics {st.metrics_url}/metrics" if st.metrics_url else ""
        console.print(f"daemon: [green]running[/green] (pid {st.daemon_pid}{where})")
    else:
        console.print("daemon: [yellow]not running[/yellow]")
    console.print(Text.assemble("state: ", shown(st.state_dir)))
    now = datetime.now(UTC)
    table = Table(title=f"{len(st.sources)} source(s)", title_justify="left")
    for col in ("source", "kind", "schedule", "last run", "outcome", "next run", "health"):
        table.add_column(col, no_wrap=col.endswith("run"))
    for s in st.sources:
        if s.healthy is None:
            health = Text("never run", style="dim")
        elif s.healthy:
            health = Text("healthy", style="green")
        else:  # the reason is a run error: a stranger's words (titles, URLs, messages)
            health = Text.assemble(("unhealthy", "red"), ": ", shown(s.reason or ""))
        table.add_row(shown(s.name), shown(s.kind), shown(s.schedule), _when(s.last_run, now),
                      shown(s.last_outcome or "-"),
                      _when(s.next_run, now) if s.configured else "-", health)
    console.print(table)
    outbox = ", ".join(f"{k} {v}" for k, v in sorted(st.outbox.items())) or "empty"
    console.print(f"alert outbox: {outbox}")
    if st.spool_depth is None:
        spool = "n/a"
    else:
        spool = f"{st.spool_depth} pending"
        if st.spool_rejected:
            spool += f", [red]{st.spool_rejected} rejected[/red] (see `leaksentry es check`)"
    console.print(f"elasticsearch spool: {spool}")
    if st.cluster is not None:
        _print_cluster(st.cluster)
    dead = st.outbox.get("dead", 0)
    if dead:
        console.print(f"[red]{dead} alert(s) in the dead-letter state[/red]:"
                      " `leaksentry alerts list`, then `leaksentry alerts retry`")


def _print_cluster(c: dict[str, Any]) -> None:
    if not c["reachable"]:
        console.print(f"cluster: [red]broker {c['broker']} unreachable[/red] ({c['error']})",
                      highlight=False)
        return
    queues = ", ".join(
        f"{q['name']} {q['depth']} waiting"
        + (f" (oldest {_span(q['lag_seconds'])})" if q["lag_seconds"] else "")
        for q in c["queues"])
    console.print(f"cluster: broker {c['broker']}; queues: {queues}", highlight=False)
    table = Table(title=f"{len(c['workers'])} worker(s)", title_justify="left")
    for col in ("worker", "queues", "jobs running", "up", "state"):
        table.add_column(col)
    for w in c["workers"]:
        jobs = ", ".join(j["source"] + (f" part {j['part']}" if j.get("part") else "")
                         for j in w["running"]) or "-"
        state = f"[red]refusing[/red]: {w['refusing']}" if w["refusing"] else "[green]alive[/green]"
        table.add_row(w["name"], ",".join(w["queues"]),
                      f"{len(w['running'])}/{w['concurrency']}: {jobs}",
                      _span(max(0.0, w["seen_at"] - w["started_at"])), state)
    console.print(table)
    if not c["workers"]:
        console.print("[yellow]no worker alive[/yellow]: start `leaksentry worker`")


def register(app: typer.Typer) -> None:
    app.command("status")(status)
