"""Where leaksentry keeps its state when the config does not say."""

from __future__ import annotations

import os
from pathlib import Path


def default_state_dir() -> Path:
    """``$LEAKSENTRY_HOME``, else ``$XDG_STATE_HOME/leaksentry``, else ~/.local/state/leaksentry."""
    if home := os.environ.get("LEAKSENTRY_HOME"):
        return Path(home).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base).expanduser() / "leaksentry"


def default_config_path() -> Path | None:
    """``$LEAKSENTRY_CONFIG``, else ./leaksentry.toml when it exists."""
    if env := os.environ.get("LEAKSENTRY_CONFIG"):
        return Path(env).expanduser()
    local = Path("leaksentry.toml")
    return local if local.exists() else None
