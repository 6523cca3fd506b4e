"""CLI commands: `es setup`, `es check`, `es flush`, `es spool`.

Imports inside the commands: `leaksentry es --help` answers without loading the
Elasticsearch client, the index templates or the spool (start-up, bench/bench_cli.py).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from leaksentry.cli.common import ConfigOption, console, settings, shown
from leaksentry.errors import LeakSentryError
from leaksentry.store import Store


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Elasticsearch/OpenSearch indices and the delivery spool.",
                        no_args_is_help=True)
    app.add_typer(group, name="es")

    @group.command("setup")
    def setup_cmd(config: ConfigOption = None) -> None:
        """Install the retention policy with the index templates, and the read aliases.

        Idempotent: run it after every upgrade. Checks the server version first (the
        `wildcard` field type needs Elasticsearch 7.9 / OpenSearch 2.15)."""
        from pipelines.sinks.client import connect
        from pipelines.sinks.setup import setup

        s = settings(config)
        cluster = connect(s.elasticsearch)
        try:
            report = setup(cluster)
        finally:
            cluster.close()
        console.print(f"server: {report.server}")
        console.print(f"index templates: {', '.join(report.templates)}")
        console.print(f"read aliases: {', '.join(report.aliases)}"
                      + (f" (created {', '.join(report.indices_created)})"
                         if report.indices_created else ""))
        console.print(f"retention: {report.retention}"
                      + {"ilm": " (ILM policy, attached by the templates)",
                         "ism": " (ISM policy, attached to new and existing indices)",
                         "none": " (no ILM/ISM on this server: see the note)"}[report.retention])
        for note in report.notes:
            console.print(shown(f"note: {note}"), soft_wrap=True, highlight=False)

    @group.command("check")
    def check_cmd(
        config: ConfigOption = None,
        as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    ) -> None:
        """Connectivity, version, auth, template state and spool depth; exit 1 on problems."""
        from pipelines.sinks.client import connect
        from pipelines.sinks.setup import check
        from pipelines.sinks.spool import spool_depth, spool_rejected

        s = settings(config)
        cluster = connect(s.elasticsearch)
        try:
            report = check(cluster)
        finally:
            cluster.close()
        store = Store(s.state)
        try:
            report.add_spool(spool_depth(store.conn), spool_rejected(store.conn))
        finally:
            store.close()
        if as_json:
            print(json.dumps(report.to_json()))
        else:
            console.print(f"url: {report.url} ({s.elasticsearch.backend} backend)")
            console.print(f"reachable: {'yes' if report.reachable else 'no'}")
            if report.auth_ok is not None:
                console.print(f"auth: {'ok' if report.auth_ok else 'refused'}")
            if report.version:
                console.print(f"version: {report.distribution} {report.version}")
            if report.retention:
                console.print(f"retention policy: {report.retention}"
                              + (f" {report.policy}" if report.retention != "none" else ""))
            for name, state in report.templates.items():
                console.print(f"template {name}: {state}")
            for name, count in report.aliases.items():
                console.print(f"alias {name}: "
                              + (f"{count} documents" if count is not None else "missing"))
            console.print(f"spool: {report.spool_depth} waiting, {report.spool_rejected}"
                          " rejected")
            for n in report.notes:
                console.print(shown(f"note: {n}"), soft_wrap=True, highlight=False)
            for p in report.problems:
                console.print(shown(f"problem: {p}"), soft_wrap=True, highlight=False)
        if not report.ok:
            raise typer.Exit(1)

    @group.command("flush")
    def flush_cmd(config: ConfigOption = None) -> None:
        """Deliver the spool now (the daemon does this on its own schedule)."""
        from pipelines.sinks.spool import drain

        s = settings(config)
        if not s.elasticsearch.enabled:
            raise LeakSentryError("elasticsearch is not configured ([elasticsearch] url)")
        store = Store(s.state)
        try:
            r = drain(store, s)
        finally:
            store.close()
        console.print(f"delivered {r.delivered}, already there {r.duplicates}, rejected"
                      f" {r.rejected}, retry later {r.retry_later}; {r.pending} waiting"
                      + (f"; {r.missing} re-sighting update(s) for hits no longer indexed"
                         if r.missing else ""))
        for e in r.errors[:5]:
            console.print(shown(f"item: {e}"))
        if r.error:
            raise LeakSentryError(r.error)

    @group.command("spool")
    def spool_cmd(
        config: ConfigOption = None,
        requeue: Annotated[bool, typer.Option(
            "--requeue", help="Put rejected documents back in the queue (after a fix).")]
        = False,
        limit: Annotated[int, typer.Option(help="List at most N rejected documents.")] = 20,
    ) -> None:
        """The delivery spool: documents waiting, and those the cluster rejected (and why)."""
        from pipelines.sinks.spool import rejected_items, requeue_rejected, spool_depth

        s = settings(config)
        store = Store(s.state)
        try:
            if requeue:
                with store.transaction() as tx:
                    n = requeue_rejected(tx)
                console.print(f"re-queued {n} rejected document(s)")
            rows = rejected_items(store.conn, limit=limit)
            console.print(f"spool: {spool_depth(store.conn)} waiting, {len(rows)} rejected"
                          + (" (first shown)" if len(rows) == limit else ""))
            for r in rows:
                console.print(shown(f"rejected {r['index_suffix']}/{r['doc_id']} at"
                                    f" {r['last_attempt_at']}: {r['last_error']}"),
                              soft_wrap=True, highlight=False)
        finally:
            store.close()
