"""The `leaksentry` command line (Typer + Rich).

Each command group lives in its own module exposing ``register(app)``. Errors
derived from :class:`~leaksentry.errors.LeakSentryError` are printed as one
line on stderr with exit code 2; nothing prints a traceback at a user.
"""

from __future__ import annotations

import errno
import os
import sys

import typer
from rich.text import Text

from leaksentry import __version__
from leaksentry.cli import (
    alerts,
    config_cmd,
    crawl,
    db,
    demo,
    es,
    evidence,
    fingerprints,
    hits,
    keys,
    kibana,
    notify,
    run,
    scan,
    status,
    worker,
)
from leaksentry.cli.common import err_console, shown
from leaksentry.errors import LeakSentryError
from leaksentry.paths import PRIVATE_UMASK

app = typer.Typer(
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
    from importlib.util import find_spec

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
    from leaksentry.redaction import install_log_redaction  # deferred for start-up

    install_log_redaction()  # every log record of every command through the policy


for _module in (keys, fingerprints, scan, crawl, run, demo, hits, status, es, kibana, alerts,
                config_cmd, evidence, notify, worker, db):
    _module.register(app)


def main() -> None:
    # every file a command creates (state store, job store, logs, reports) and every
    # crawl subprocess it starts: owner only
    os.umask(PRIVATE_UMASK)
    try:
        app()
    except LeakSentryError as exc:
        err_console.print(Text.assemble(("error: ", "red"), shown(exc)), highlight=False,
                          soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        from leaksentry.store.engine import db_errors  # deferred: loads the config models

        if isinstance(exc, db_errors()):  # damaged state file, full disk, lost server
            from leaksentry.store.db import last_opened, store_failure

            err = store_failure(last_opened(), exc)
            err_console.print(Text.assemble(("error: ", "red"), shown(err)), highlight=False,
                              soft_wrap=True)
            sys.exit(err.exit_code)
        if not isinstance(exc, OSError) or exc.errno != errno.ENOSPC:
            raise
        err_console.print(Text.assemble(("error: ", "red"), shown(
            f"{exc.filename or 'output'}: disk full ({exc.strerror})")), highlight=False,
            soft_wrap=True)
        sys.exit(2)
