"""`leaksentry config check`."""

from __future__ import annotations

import stat

import typer
from rich.text import Text

from leaksentry.cli.common import ConfigOption, console, err_console, settings, shown
from leaksentry.config import Settings
from leaksentry.errors import ConfigError

config_app = typer.Typer(help="Validate and inspect the configuration.", no_args_is_help=True)


@config_app.command("check")
def check(config: ConfigOption = None) -> None:
    """Validate a config file; print one line per problem and exit 2 if it is invalid.

    Secrets written into the file (rather than named by ``*_env``) are warned about,
    and refused (exit 2) when the file is readable by group or others."""
    s = settings(config)
    where = str(s.path) if s.path else "built-in defaults"
    _check_secrets(s)
    console.print(Text.assemble(("ok", "green"), " ", shown(where),
                                f": {len(s.sources)} source(s), state in ",
                                shown(s.state.dir)))


def _check_secrets(s: Settings) -> None:
    from leaksentry.config.secrets import secrets_in_file

    found = secrets_in_file(s)
    if not found or s.path is None:
        return
    mode = stat.S_IMODE(s.path.stat().st_mode)
    for path in found:
        err_console.print(Text.assemble(("warning: ", "yellow"), shown(
            f"{s.path}: {path}: a secret written in the config file")), soft_wrap=True)
    if mode & 0o044:
        raise ConfigError(f"{s.path}: holds {len(found)} secret(s) and is readable by group or"
                          f" others (mode {mode:04o}): chmod 600 it, or move the secrets to"
                          " the environment (*_env)")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
