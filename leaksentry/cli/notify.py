"""CLI command: `notify` — the list of people to notify, on the trusted side.

Imports inside the command: `leaksentry --help` loads neither the report writers nor
the key (start-up, bench/bench_cli.py).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from leaksentry.cli.common import ConfigOption, settings
from leaksentry.errors import LeakSentryError
from leaksentry.store import Store

if TYPE_CHECKING:
    from leaksentry.config import Settings


def register(app: typer.Typer) -> None:
    @app.command("notify")
    def notify_cmd(
        register_path: Annotated[Path, typer.Option(
            "--register", help="The register (CSV or XLSX) the fingerprints were built from.")],
        out: Annotated[Path, typer.Option(
            "--out", "-o", help="Report to write: .xlsx (people + summary sheets) or .csv"
                                " (and NAME.summary.csv). Created 0600.")],
        hits: Annotated[Path | None, typer.Option(
            "--hits", help="`leaksentry hits --json` output (default: every hit in the"
                           " local store of --config).")] = None,
        ref_column: Annotated[str | None, typer.Option(
            help="Register column holding the reference (as for fingerprints build;"
                 " default: row numbers).")] = None,
        hkid_column: Annotated[str | None, typer.Option(
            help="HKID column (for the --key check; guessed when not given).")] = None,
        hn_column: Annotated[str | None, typer.Option(
            help="Hospital-number column (for the --key check).")] = None,
        include: Annotated[str, typer.Option(
            help='Register columns to copy into the report, e.g. "Patient Name,Phone".')] = "",
        key: Annotated[Path | None, typer.Option(
            help="Key file: check that the register's identifiers are the fingerprints"
                 " that named each record (with --fingerprints).")] = None,
        fingerprints: Annotated[Path | None, typer.Option(
            help="Fingerprint file to check the register against.")] = None,
        config: ConfigOption = None,
    ) -> None:
        """Join the hits' record refs to the register: one row per affected person, each
        leak that exposed them and which data were exposed.

        Personal data goes only into --out; this command prints counts only.
        """
        from pipelines.match.keys import read_key
        from pipelines.notify import (
            RegisterSpec,
            affected,
            join_register,
            read_hits_jsonl,
            summarise,
            write_report,
        )

        s = settings(config)
        if hits is not None:
            people, leaks = affected(read_hits_jsonl(hits))
            where = str(hits)
        else:
            people, leaks = affected(_store_hits(s))
            where = str(s.state.db)
        if not people:
            print(f"no affected records in the hits of {where}; no report written",
                  file=sys.stderr)
            raise typer.Exit(0)
        if (key is None) != (fingerprints is None):
            raise LeakSentryError("--key and --fingerprints go together (the check needs both)")
        spec = RegisterSpec(register_path, ref_column, hkid_column, hn_column,
                            [c.strip() for c in include.split(",") if c.strip()])
        included, verified = join_register(
            people, spec, s.matching, read_key(key) if key else None, fingerprints)
        summary = summarise(people, leaks)
        summary.verified = verified
        loose = write_report(out, included, people, summary)
        check = (f"; register checked against the fingerprints for all {verified} rows"
                 if verified is not None else "; register NOT checked (give --key and"
                 " --fingerprints to check it)")
        print(f"{summary.people:,} affected people in {summary.leaks:,} leak(s) written to"
              f" {out}{check}. Personal data is only in that file.", file=sys.stderr)
        for path in loose:
            print(f"warning: {path} is readable by other users; it holds personal data:"
                  f" chmod 600 {path}", file=sys.stderr)


def _store_hits(s: Settings) -> list[dict[str, Any]]:
    from pipelines.sinks.local import query_hits

    store = Store(s.state)
    try:
        return [h.to_json() for h in query_hits(store.conn, limit=1 << 31)]
    finally:
        store.close()
