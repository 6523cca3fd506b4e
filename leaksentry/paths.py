"""Where leaksentry keeps its state when the config does not say."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

#: files leaksentry creates are its owner's alone (state, jobs, logs, reports)
PRIVATE_UMASK = 0o077


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


def private_file(path: Path) -> None:
    """Create ``path`` mode 0600 if it is missing, and narrow it (and SQLite's ``-wal``,
    ``-shm`` and ``-journal`` companions, which SQLite creates with the database file's
    mode) to 0600 if an older version left them wider."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except IsADirectoryError:
        return
    os.close(fd)
    for p in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
        with contextlib.suppress(FileNotFoundError):
            if p.stat().st_mode & 0o077:
                p.chmod(0o600)


def write_private(path: Path, data: bytes, *, replace: bool = True) -> bool:
    """Write ``data`` to ``path`` as a 0600 file, atomically: whole to a temp file beside it,
    fsynced, then renamed over ``path`` (``replace``), or hard-linked to it (not
    ``replace``: the first writer wins, and False says another process's file was there).
    Nobody ever reads a half-written file, whichever processes race."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)  # whatever the umask
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
