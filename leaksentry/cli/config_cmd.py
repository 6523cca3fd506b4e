"""`leaksentry config check`."""

from __future__ import annotations

import typer

from leaksentry.cli.common import ConfigOption, console, settings

config_app = typer.Typer(help="Validate and inspect the configuration.", no_args_is_help=True)


@config_app.command("check")
def check(config: ConfigOption = None) -> None:
    """Validate a config file; print one line per problem and exit 2 if it is invalid."""
    s = settings(config)
    where = str(s.path) if s.path else "built-in defaults"
    console.print(f"[green]ok[/green] {where}: {len(s.sources)} source(s), state in {s.state.dir}")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
