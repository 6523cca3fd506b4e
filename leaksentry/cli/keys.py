"""`leaksentry keygen`: the HMAC key that makes fingerprints unguessable.

Imports inside the command: `leaksentry --help` does not load the key module
(start-up, bench/bench_cli.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from leaksentry.cli.common import console


def keygen(
    out: Annotated[Path, typer.Option("--out", "-o", help="Key file to create (mode 0600).",
                                      show_default=False)],
) -> None:
    """Create a new key: 32 random bytes, readable by you only. Never overwrites a file.

    Keep the key apart from the fingerprint file: the file alone reveals nothing,
    and every command that reads the key refuses one that group or others can read.
    """
    from pipelines.match.keys import generate_key

    kid = generate_key(out)
    console.print(f"wrote key {out} (key id {kid}); keep it apart from the fingerprint file",
                  highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("keygen")(keygen)
