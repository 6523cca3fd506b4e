"""The `leaksentry` command line (Typer + Rich).

Each command group lives in its own module exposing ``register(app)``, imported only
when its command runs (or help lists every command): see :data:`COMMANDS`. Errors
derived from :class:`~leaksentry.errors.LeakSentryError` are printed as one
line on stderr with exit code 2; nothing prints a traceback at a user.

The redaction policy and the store are imported inside the functions that use them:
`--version` prints its line without loading them (14 and 10 ms; start-up,
tests/leaksentry/cli/test_startup.py, bench/bench_cli.py).
"""

from __future__ import annotations

import errno
import os
import sys
from importlib import import_module
from importlib.util import find_spec

import typer
import typer.main
from typer import _click
from typer.core import TyperGroup

from leaksentry import __version__
from leaksentry.cli import common
from leaksentry.cli.common import problem
from leaksentry.errors import LeakSentryError
from leaksentry.paths import PRIVATE_UMASK

#: command -> the module of leaksentry.cli that registers it, in the order help lists
#: them. A command imports its own module only: `scan` does not pay for the alert,
#: crawl, evidence ... modules (start-up time, issue 18)
COMMANDS = {
    "keygen": "keys", "scan": "scan", "crawl": "crawl", "run": "run", "demo": "demo",
    "hits": "hits", "status": "status", "notify": "notify", "worker": "worker",
    "fingerprints": "fingerprints", "es": "es", "kibana": "kibana", "alerts": "alerts",
    "config": "config_cmd", "evidence": "evidence", "db": "db",
}


class LazyGroup(TyperGroup):
    """The root command group: a command's module is imported when the command is looked
    up (to run it, or to list it in help), and registered as it always was."""

    def list_commands(self, ctx: _click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.commands.update(_commands_of(COMMANDS[cmd_name]))
        return self.commands.get(cmd_name)

    def resolve_command(self, ctx: _click.Context, args: list[str]
                        ) -> tuple[str | None, _click.Command | None, list[str]]:
        if args and args[0] not in COMMANDS:  # a typo: suggest among every command
            for name in COMMANDS:
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)


def _commands_of(module: str) -> dict[str, _click.Command]:
    """The click commands ``leaksentry.cli.<module>.register`` adds to an app."""
    sub = typer.Typer()
    sub.callback()(lambda: None)  # always a group, even for a module of one command
    import_module(f"{__name__}.{module}").register(sub)
    group = typer.main.get_command(sub)
    assert isinstance(group, TyperGroup)
    return dict(group.commands)


app = typer.Typer(
    cls=LazyGroup,
    name="leaksentry",
    help=(
        "Watch paste sites and file platforms for uploads containing your organisation's"
        " HKID and hospital numbers, holding only keyed fingerprints of them."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _scanner_path() -> str:
    """Which scanner this install runs (found without importing the engines)."""
    engine = "hyperscan" if find_spec("hyperscan") else "re"
    fast = find_spec("pipelines.match._speedups") is not None
    return f"{engine} + {'C speedups' if fast else 'pure Python (C speedups not built)'}"


def _version(value: bool) -> None:
    if value:
        print(f"leaksentry {__version__} (scanner: {_scanner_path()})")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    from leaksentry.redaction import install_log_redaction

    install_log_redaction()  # every log record of every command through the policy



def main() -> None:
    # numpy's OpenBLAS starts a spinning thread per core at import, 60 ms of CPU the
    # scanner (sorts and searches, no linear algebra) never uses; crawls inherit it
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # no pydantic plugins are used: looking for them reads every installed package's
    # entry points when the config models are built (6 ms)
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    # every file a command creates (state store, job store, logs, reports) and every
    # crawl subprocess it starts: owner only
    os.umask(PRIVATE_UMASK)
    try:
        app()
    except LeakSentryError as exc:
        problem("error: ", "red", exc, highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        common.err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        from leaksentry.store.engine import db_errors

        if isinstance(exc, db_errors()):  # damaged state file, full disk, lost server
            from leaksentry.store.db import last_opened
            from leaksentry.store.failures import store_failure

            err = store_failure(last_opened(), exc)
            problem("error: ", "red", err, highlight=False)
            sys.exit(err.exit_code)
        if not isinstance(exc, OSError) or exc.errno != errno.ENOSPC:
            raise
        problem("error: ", "red", f"{exc.filename or 'output'}: disk full ({exc.strerror})",
                highlight=False)
        sys.exit(2)
