"""CLI commands: `kibana install --url URL`.

Imports inside the command: `leaksentry --help` does not load the Kibana installer
(httpx) (start-up, bench/bench_cli.py).
"""

from __future__ import annotations

from typing import Annotated

import typer

from leaksentry.cli.common import ConfigOption, console, settings


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Kibana saved objects and alert rule.", no_args_is_help=True)
    app.add_typer(group, name="kibana")

    @group.command("install")
    def install_cmd(
        url: Annotated[str | None, typer.Option(
            help="Kibana URL (default: [kibana] url).")] = None,
        config: ConfigOption = None,
    ) -> None:
        """Import the data views, searches and dashboard, and create the .es-query rule.

        Idempotent: objects are imported with overwrite, and an existing rule is updated
        (keeping the actions added in Kibana). Needs Kibana 8.9 or newer.
        Auth from [kibana] (api_key / username + password, or their *_env variables)."""
        from kibana.install import KibanaError, install

        s = settings(config)
        target = url or s.kibana.url
        if not target:
            raise KibanaError("kibana install: no URL (pass --url or set [kibana] url)")
        report = install(target, s.kibana, prefix=s.elasticsearch.index_prefix)
        console.print(f"Kibana {report.kibana_version} at {target}")
        console.print(f"imported {report.imported} saved objects"
                      f" (data views, searches, visualisations, dashboard)")
        kept = f", {report.actions_kept} existing action(s) kept" if report.actions_kept else ""
        console.print(f"alert rule {report.rule_id}: {report.rule_action}{kept}")
        if report.legacy_rule_removed:
            console.print("removed the rule of an older leaksentry (id leaksentry-critical-hits);"
                          " its actions moved to the new rule")
