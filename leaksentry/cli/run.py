"""`leaksentry run`: the scheduled daemon (see scheduler/daemon.py).

Imports inside the command: `leaksentry --help` does not load the daemon
(APScheduler, SQLAlchemy) (start-up, bench/bench_cli.py).
"""

from __future__ import annotations

import typer

from leaksentry.cli.common import ConfigOption


def run(config: ConfigOption = None) -> None:
    """Run every source on its schedule and keep alerts and the spool moving, until stopped.

    SIGHUP reloads the config; SIGTERM/SIGINT stop gracefully (a second one at once).
    """
    from scheduler.daemon import run_daemon

    raise typer.Exit(run_daemon(config))


def register(app: typer.Typer) -> None:
    app.command("run")(run)
