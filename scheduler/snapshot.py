"""The config the daemon runs, frozen: what every crawl subprocess reads.

A crawl is a subprocess that reads a config file. Were it the operator's
file, an edit saved without SIGHUP, or a broken file whose reload the daemon
rejected, would change what the next crawl does. So on start and on every
successful reload the daemon writes the exact bytes it validated to
``STATE_DIR/config/<sha256>.toml`` (0600) and hands each crawl that path and
its hash; the crawl refuses a file whose hash differs
(:func:`leaksentry.config.read_config`). Only a successful reload changes what
runs.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from pathlib import Path

from leaksentry.paths import write_private

SNAPSHOT_DIR = "config"


@dataclass(frozen=True, slots=True)
class ConfigSnapshot:
    path: Path
    sha256: str


def write_snapshot(state_dir: Path, raw: bytes, keep: ConfigSnapshot | None = None
                   ) -> ConfigSnapshot:
    """Write ``raw`` (0600, atomically) and remove older snapshots except ``keep`` (the
    one crawls started just before a reload may still be opening)."""
    digest = hashlib.sha256(raw).hexdigest()
    folder = state_dir / SNAPSHOT_DIR
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{digest}.toml"
    write_private(path, raw)  # the config may hold secrets
    wanted = {path.name} | ({keep.path.name} if keep is not None else set())
    for old in folder.iterdir():
        if old.name not in wanted:
            with contextlib.suppress(OSError):
                old.unlink()
    return ConfigSnapshot(path, digest)
