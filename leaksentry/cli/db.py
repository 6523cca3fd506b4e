"""CLI commands: `db upgrade`, `db migrate-from-sqlite` — the state store's schema, and
moving a single machine's SQLite store to the PostgreSQL of a cluster.

Imports inside `migrate-from-sqlite`: `leaksentry --help` loads neither the copier, the
seen-item sealer (the redaction policy) nor Rich's progress bar (start-up,
bench/bench_cli.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from leaksentry.cli.common import ConfigOption, console, settings
from leaksentry.errors import LeakSentryError
from leaksentry.paths import write_private
from leaksentry.store import Store


def register(app: typer.Typer) -> None:
    db_app = typer.Typer(help="The state store: schema upgrades, moving to PostgreSQL.",
                         no_args_is_help=True)
    app.add_typer(db_app, name="db")

    @db_app.command("upgrade")
    def upgrade(config: ConfigOption = None) -> None:
        """Bring the state store's schema to this leaksentry's version.

        A PostgreSQL store (\\[state] url) is migrated only by this command: run it once
        after installing a new leaksentry, before the daemon and the workers start (they
        refuse a store that is behind). A SQLite store migrates itself on open; this
        command does that now."""

        s = settings(config)
        where = s.state.url or str(s.state.db)
        behind: dict[str, tuple[int, int]] = {}
        if s.state.url or s.state.db.exists():
            probe = Store(s.state, readonly=True)
            try:
                behind = probe.pending_migrations()
            finally:
                probe.close()
        Store(s.state, upgrade=True).close()
        if not behind:
            console.print(f"{where}: schema up to date")
        for component, (old, new) in behind.items():
            console.print(f"{where}: {component} {old} → {new}")

    @db_app.command("migrate-from-sqlite")
    def migrate_from_sqlite(
        path: Annotated[Path, typer.Argument(help="The SQLite state file to copy"
                                                  " (e.g. ~/.local/state/leaksentry/state.db).")],
        config: ConfigOption = None,
    ) -> None:
        """Copy a SQLite state store into the PostgreSQL store of \\[state] url.

        Every table (documents, hits, seen items, spool, outbox, runs, evidence index), in
        one transaction: a failed copy leaves the target empty. The target must be empty.
        The SQLite file's seen.key (the secret its seen items are sealed with) is copied
        to the state directory when that has none; copy it to every worker too."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        from leaksentry.store.copy import copy_store
        from leaksentry.store.seen import KEY_FILE

        s = settings(config)
        if not s.state.url:
            raise LeakSentryError("[state] url is not set: migrate-from-sqlite copies into"
                                  " the PostgreSQL store it names")
        path = path.expanduser()
        if not path.is_file():
            raise LeakSentryError(f"{path}: no such SQLite state file")
        key_src, key_dst = path.with_name(KEY_FILE), s.state.dir / KEY_FILE
        if key_src.exists() and key_dst.exists() \
                and key_src.read_bytes() != key_dst.read_bytes():
            raise LeakSentryError(f"{key_dst} differs from {key_src}: the copied seen items"
                                  f" are sealed with {key_src}; move {key_dst} away first")
        dst = Store(s.state, upgrade=True)  # the server first: it is what is likely down
        try:
            src = Store(path)
        except BaseException:
            dst.close()
            raise
        try:
            with Progress(TextColumn("{task.description:<16}"), BarColumn(),
                          MofNCompleteColumn(), console=console, transient=True) as bar:
                tasks: dict[str, object] = {}

                def progress(table: str, done: int, total: int) -> None:
                    if total < 10_000:  # a bar only for the big tables
                        return
                    if table not in tasks:
                        tasks[table] = bar.add_task(table, total=total)
                    bar.update(tasks[table], completed=done)  # type: ignore[arg-type]

                report = copy_store(src, dst, progress)
        finally:
            src.close()
            dst.close()
        if key_src.exists() and not key_dst.exists():

            s.state.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_private(key_dst, key_src.read_bytes(), replace=False)
            console.print(f"copied {KEY_FILE} to {key_dst} (every worker needs this file)")
        for table, n in report.counts.items():
            console.print(f"{table:<16} {n:>10,} rows")
        for table, cols in report.dropped_columns.items():
            console.print(f"{table}: not in the target, left out: {', '.join(cols)}")
        console.print(f"copied {sum(report.counts.values()):,} rows into {s.state.url}")
