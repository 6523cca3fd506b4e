"""Pieces every command shares: consoles, the --config option, loading settings.

Rich, the redaction policy and the config models are imported inside the functions that
use them: `--help` needs no policy and no models, and `scan --json` prints nothing through
Rich (about 20 ms; start-up, tests/leaksentry/cli/test_startup.py, bench/bench_cli.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from leaksentry.terminal import visible

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from leaksentry.config import Settings

    console: Console
    err_console: Console

#: the two consoles, each made on first use (PEP 562): `scan --json` prints nothing
#: through Rich and does not import it (about 20 ms of start-up); that command reads
#: them as ``common.console`` when it prints
_CONSOLES: dict[str, dict[str, Any]] = {"console": {}, "err_console": {"stderr": True}}


def __getattr__(name: str) -> Any:
    options = _CONSOLES.get(name)
    if options is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from rich.console import Console

    # emoji codes (":warning:") in a stranger's text must stay text
    made = globals()[name] = Console(emoji=False, **options)
    return made


def _console(name: str) -> Console:
    made: Console = globals().get(name) or __getattr__(name)
    return made

def shown(value: object, style: str = "") -> Text:
    """Stranger-controlled text as a Rich ``Text`` (never parsed as markup), through the
    redaction policy (:func:`leaksentry.redaction.redact`: identifiers masked, URL
    userinfo removed), control characters escaped (:func:`leaksentry.terminal.visible`).
    Use it for table cells and ``Text.assemble`` parts."""
    from rich.text import Text

    from leaksentry.redaction import redact

    return Text(visible(redact(str(value)) or ""), style=style)


def problem(label: str, style: str, value: object, **options: Any) -> None:
    """``label`` ("error: ") in ``style``, then stranger-controlled text (:func:`shown`),
    as one line on stderr."""
    from rich.text import Text

    _console("err_console").print(Text.assemble((label, style), shown(value)), soft_wrap=True,
                                  **options)


def markup_safe(value: object) -> str:
    """Stranger-controlled text to embed in a Rich markup string (``[/`` stays text),
    through the redaction policy."""
    from rich.markup import escape

    from leaksentry.redaction import redact

    return escape(visible(redact(str(value)) or ""))

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c",
        help=("Config file (default: $LEAKSENTRY_CONFIG, else ./leaksentry.toml,"
              " else built-in defaults)."),
        show_default=False,
    ),
]


def print_table(table: Table) -> None:
    """A table on stdout: fitted to the terminal, or at its full width when stdout is a
    pipe or a file (Rich would otherwise cut it to 80 columns and wrap every row)."""
    from rich.console import Console

    out = _console("console")
    if out.is_terminal:
        out.print(table)
        return
    width = Console(width=100_000).measure(table).maximum
    Console(width=max(width, 20), soft_wrap=False).print(table)


def settings(config: Path | None, *, sha256: str | None = None) -> Settings:
    """Load and validate the config; a bad file raises ConfigError (one line, exit 2).
    ``sha256``: refuse the file unless its bytes have this hash."""
    from leaksentry.config import load_config

    return load_config(config, sha256=sha256)


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from leaksentry.redaction import install_log_redaction

    install_log_redaction()  # every record through the redaction policy
