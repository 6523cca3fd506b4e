"""`leaksentry fingerprints build | info`: the register becomes keyed digests.

`build` is the only command that reads plaintext identifiers (the register,
on the trusted side); it reports counts and row numbers, never values.

Imports inside the commands: `leaksentry --help` loads neither the register readers
(calamine) nor the key (start-up, bench/bench_cli.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from leaksentry.cli.common import ConfigOption, console, err_console, settings
from leaksentry.errors import ConfigError

fp_app = typer.Typer(help="Build and inspect fingerprint files.", no_args_is_help=True)


def _rows(rows: list[int], total: int) -> str:
    if not rows:
        return ""
    more = f" (+{total - len(rows)} more)" if total > len(rows) else ""
    return "rows " + ", ".join(map(str, rows)) + more


@fp_app.command("build")
def build(
    register_path: Annotated[Path, typer.Argument(
        metavar="REGISTER", help="The register: CSV or XLSX, header row first.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Fingerprint file to write.",
                                      show_default=False)],
    key: Annotated[Path | None, typer.Option("--key", help="Key file (from keygen).",
                                             show_default=False)] = None,
    hkid_column: Annotated[str | None, typer.Option(
        "--hkid-column", help="Column with HKID numbers (default: a column named like 'hkid').",
        show_default=False)] = None,
    hn_column: Annotated[str | None, typer.Option(
        "--hn-column", help="Column with hospital numbers (default: a column named like 'hn').",
        show_default=False)] = None,
    ref_column: Annotated[str | None, typer.Option(
        "--ref-column", help="Column naming each record (default: the 1-based data row number).",
        show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    config: ConfigOption = None,
) -> None:
    """Read the register once and write keyed fingerprints of its identifiers.

    Reports rows read, identifiers written, empty and invalid values and
    duplicates (counts and row numbers only). Exit 2 on a missing column,
    an unreadable register or key.
    """
    from pipelines.match.keys import read_key
    from pipelines.match.register import build_fingerprints

    s = settings(config)
    key_path = key or s.matching.key
    if key_path is None:

        raise ConfigError("no key: give --key or set matching.key in the config")
    key_bytes = read_key(key_path)
    with Progress(TextColumn("reading register"), BarColumn(),
                  TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                  console=err_console, transient=True) as progress:
        task = progress.add_task("register", total=None)

        def on_progress(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        report = build_fingerprints(register_path, key_bytes, out, hkid_column=hkid_column,
                                    hn_column=hn_column, ref_column=ref_column,
                                    config=s.matching, progress=on_progress)
    if as_json:
        print(json.dumps(report.to_json() | {"out": str(out)}))
        return
    table = Table(title=f"{register_path}: {report.rows} rows", title_justify="left")
    for col in ("kind", "column", "written", "empty", "invalid", "duplicates"):
        table.add_column(col, justify="right" if col not in ("kind", "column") else "left")
    for name, r in report.kinds.items():
        table.add_row(name, r.column, str(r.written), str(r.empty),
                      f"{r.invalid} {_rows(r.invalid_rows, r.invalid)}".strip(),
                      f"{r.duplicates} {_rows(r.duplicate_rows, r.duplicates)}".strip())
    console.print(table)
    info = report.info
    console.print(f"wrote {out}: {report.identifiers} identifiers of {report.rows} records,"
                  f" {info.size if info else 0} bytes, key id {info.key_id if info else '?'}",
                  highlight=False, soft_wrap=True)


@fp_app.command("info")
def info(
    path: Annotated[Path, typer.Argument(metavar="FPFILE", help="A fingerprint file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the header as JSON.")] = False,
) -> None:
    """Print a fingerprint file's header: version, key id, kinds and counts."""
    from pipelines.match.fpfile import read_info

    i = read_info(path)
    data: dict[str, Any] = {
        "path": str(i.path), "version": i.version, "key_id": i.key_id, "entries": i.entries,
        "records": i.records, "ref_column": i.build.get("ref_column"),
        "created": datetime.fromtimestamp(i.created, UTC).isoformat(),
        "kinds": {k["name"]: k["count"] for k in i.kinds}, "bytes": i.size,
        "bytes_per_identifier": round(i.size / i.entries, 2) if i.entries else None,
    }
    if as_json:
        print(json.dumps(data))
        return
    table = Table(show_header=False, box=None)
    for k, v in data.items():
        if k == "kinds":
            v = ", ".join(f"{name} {count}" for name, count in v.items())
        table.add_row(k, str(v))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(fp_app, name="fingerprints")
