"""Pieces every command shares: consoles, the --config option, loading settings."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from leaksentry.terminal import visible

if TYPE_CHECKING:
    from leaksentry.config import Settings

# emoji codes (":warning:") in a stranger's text must stay text
console = Console(emoji=False)
err_console = Console(stderr=True, emoji=False)

def shown(value: object, style: str = "") -> Text:
    """Stranger-controlled text as a Rich ``Text`` (never parsed as markup), through the
    redaction policy (:func:`leaksentry.redaction.redact`: identifiers masked, URL
    userinfo removed), control characters escaped (:func:`leaksentry.terminal.visible`).
    Use it for table cells and ``Text.assemble`` parts."""
    from leaksentry.redaction import redact  # deferred for start-up: --help needs no policy

    return Text(visible(redact(str(value)) or ""), style=style)


def markup_safe(value: object) -> str:
    """Stranger-controlled text to embed in a Rich markup string (``[/`` stays text),
    through the redaction policy."""
    from leaksentry.redaction import redact  # deferred for start-up: --help needs no policy

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
    if console.is_terminal:
        console.print(table)
        return
    width = Console(width=100_000).measure(table).maximum
    Console(width=max(width, 20), soft_wrap=False).print(table)


def settings(config: Path | None, *, sha256: str | None = None) -> Settings:
    """Load and validate the config; a bad file raises ConfigError (one line, exit 2).
    ``sha256``: refuse the file unless its bytes have this hash."""
    from leaksentry.config import load_config  # deferred for start-up: --help needs no models

    return load_config(config, sha256=sha256)


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from leaksentry.redaction import install_log_redaction  # deferred for start-up

    install_log_redaction()  # every record through the redaction policy
