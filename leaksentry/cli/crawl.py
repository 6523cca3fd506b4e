"""`leaksentry crawl SOURCE` — one crawl of one source, in this process.

The run is recorded in the state store before the command exits (the daemon
starts this command as a subprocess per crawl and reads the record). Exit code
0 when the run's outcome is ok, 1 otherwise. ``--all`` runs every enabled
source once, each in its own subprocess (the Twisted reactor cannot restart).

Imports inside the commands: `crawl --help` loads neither Scrapy/Twisted, the scanner,
Celery nor the config models (the run records import them) (start-up,
bench/bench_cli.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from leaksentry.cli.common import ConfigOption, err_console, print_table, settings, shown
from leaksentry.errors import ConfigError
from leaksentry.store.db import Store
from pipelines.model import RunSummary

if TYPE_CHECKING:
    from leaksentry.config import Settings


def _summary_table(runs: list[RunSummary]) -> Table:
    table = Table(title="crawl runs", show_lines=False)
    for col in ("source", "outcome", "discovered", "fetched", "new", "hits", "errors",
                "statuses", "seconds"):
        table.add_column(col, justify="right" if col not in ("source", "outcome", "statuses")
                         else "left")
    for r in runs:
        style = "green" if r.outcome == "ok" else "red"
        statuses = " ".join(f"{k}:{v}" for k, v in sorted(r.statuses.items()))
        table.add_row(shown(r.source), shown(r.outcome, style), str(r.discovered),
                      str(r.fetched), str(r.new), str(r.hits), str(r.errors), shown(statuses),
                      f"{r.duration:.1f}")
    return table


def _as_json(r: RunSummary) -> str:
    from leaksentry.redaction import redact

    return json.dumps({"source": r.source, "outcome": r.outcome, "discovered": r.discovered,
                       "fetched": r.fetched, "new": r.new, "hits": r.hits, "errors": r.errors,
                       "statuses": r.statuses, "duration": round(r.duration, 3),
                       "error": redact(r.error)})


def _last_run(app_settings: Settings, name: str) -> RunSummary | None:
    from leaksentry.store.runs import recent_runs

    store = Store(app_settings.state)
    try:
        rows = recent_runs(store.conn, name, limit=1)
    finally:
        store.close()
    if not rows:
        return None
    row = rows[0]
    return RunSummary(source=row["source"], started_at=datetime.fromisoformat(row["started_at"]),
                      finished_at=datetime.fromisoformat(row["finished_at"]),
                      outcome=row["outcome"], discovered=row["discovered"],
                      fetched=row["fetched"], new=row["new"], hits=row["hits"],
                      errors=row["errors"], statuses=json.loads(row["statuses"] or "{}"),
                      error=row["error"])


def setting_overrides(pairs: list[str]) -> dict[str, str]:
    """``NAME=VALUE`` pairs (``crawl -s``) as Scrapy settings; a pair without ``=`` is
    refused with one line."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq or not name.strip():
            raise ConfigError(f"-s {pair!r}: expected NAME=VALUE")
        out[name.strip()] = value
    return out


def register(app: typer.Typer) -> None:
    @app.command("crawl")
    def crawl(
        source: Annotated[str | None, typer.Argument(help="Source name from [[sources]].",
                                                     show_default=False)] = None,
        all_sources: Annotated[bool, typer.Option(
            "--all", help="Crawl every enabled source once (one subprocess each).")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print the run as JSON.")] = False,
        config: ConfigOption = None,
        config_sha256: Annotated[str | None, typer.Option(
            "--config-sha256", help="Refuse the config file unless its SHA-256 is this (the"
            " daemon passes its validated snapshot this way).", show_default=False)] = None,
        cluster_job: Annotated[str | None, typer.Option(
            "--cluster-job", hidden=True, help="Set by a cluster worker: the job id.")] = None,
        fan_out: Annotated[bool, typer.Option(
            "--fan-out", hidden=True, help="Cluster: list once, enqueue the items.")] = False,
        part: Annotated[Path | None, typer.Option(
            "--part", hidden=True, help="Cluster: fetch the batch in this file.")] = None,
        set_: Annotated[list[str] | None, typer.Option(
            "-s", "--set", metavar="NAME=VALUE", help="A Scrapy setting for this crawl, as"
            " `scrapy crawl -s` (crawler/settings.py lists leaksentry's; repeatable).",
            show_default=False)] = None,
    ) -> None:
        """Crawl one source (or --all) once and print what the run did."""
        if parent := os.environ.get("LEAKSENTRY_DIE_WITH_PARENT"):
            # started by a cluster worker (its pid): stop gracefully, recording the run,
            # when it dies; the job runs again on another worker
            from pipelines.process import die_with

            die_with(int(parent), signal.SIGTERM)  # exits at once if it died already
        app_settings = settings(config, sha256=config_sha256)
        overrides = setting_overrides(set_ or [])
        if all_sources == (source is not None):
            raise ConfigError("name one source, or use --all")
        if source is not None:
            app_settings.source(source)  # unknown name: one-line error, exit 2
            if cluster_job is not None and (fan_out or part is not None):
                # a part of a cluster run
                from scheduler.cluster import fanout

                run = (fanout.run_items(app_settings, source, part, overrides)
                       if part is not None
                       else fanout.run_listing(app_settings, source, cluster_job, overrides))
            else:
                from crawler.runner import run_crawl

                run = run_crawl(app_settings, source, limit=cluster_job is not None,
                                overrides=overrides)
            runs = [run]
        else:
            runs = []
            cfg = app_settings.path
            for s in app_settings.sources:
                if not s.enabled:
                    continue
                cmd = [sys.executable, "-m", "leaksentry", "crawl", s.name,
                       *(f"--set={x}" for x in set_ or [])]
                if cfg is not None:
                    cmd += ["--config", str(cfg)]
                    if config_sha256:
                        cmd += ["--config-sha256", config_sha256]
                before = datetime.now(UTC)
                proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, check=False)
                got = _last_run(app_settings, s.name)
                if got is None or got.finished_at < before:  # it never recorded a run
                    now = datetime.now(UTC)
                    got = RunSummary(source=s.name, started_at=before, finished_at=now,
                                     outcome="error",
                                     error=f"crawl process exited {proc.returncode}"
                                           " without recording a run")
                runs.append(got)
        if as_json:
            for r in runs:
                print(_as_json(r))
        else:
            print_table(_summary_table(runs))
            for r in runs:
                if r.error:
                    err_console.print(shown(f"{r.source}: {r.outcome}: {r.error}"),
                                      highlight=False, soft_wrap=True)
        if any(r.outcome != "ok" for r in runs):
            raise typer.Exit(1)
