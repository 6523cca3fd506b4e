"""CLI command: `leaksentry demo`, the self-contained local demo (leaksentry/demo).

Imports inside the command: `leaksentry --help` loads neither the demo (its sites,
scanner and daemon) nor Rich's log handler (start-up, bench/bench_cli.py).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from leaksentry.cli.common import console, err_console

_MARK = {"done": ("✓", "green"), "fail": ("✗", "red"), "skip": ("–", "yellow")}


class _Steps:
    """The progress display: a spinner per running step, a ✓/✗ line when it ends."""

    def __init__(self, out: Console) -> None:
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                 TimeElapsedColumn(), console=out, transient=False)
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, step: str, state: str, detail: str) -> None:
        label = step.removeprefix("crawl:")
        label = f"crawl {label}" if step.startswith("crawl:") else label
        if state == "start":
            self.tasks[step] = self.progress.add_task(f"{label}: {detail}", total=1)
            return
        mark, style = _MARK.get(state, ("•", ""))
        text = Text.assemble((f"{mark} ", style), (f"{label}: ", "bold"), detail)
        task = self.tasks.pop(step, None)
        if task is None:
            task = self.progress.add_task("", total=1)
        self.progress.update(task, description=text.markup, completed=1)


def _log_to(out: Console) -> None:
    """leaksentry's own warnings print above the progress lines (not through logging's bare
    last-resort handler); libraries' retries and tracebacks stay out of the demo's way."""
    from rich.logging import RichHandler

    def ours(record: logging.LogRecord) -> bool:
        record.exc_info = record.exc_text = None  # one line per problem, no traceback
        if record.name.startswith(("leaksentry.scheduler", "scheduler")):
            return False  # crawl outcomes: the progress lines and the report show them
        return record.name.startswith(("leaksentry", "pipelines", "crawler"))

    root = logging.getLogger()
    if not root.handlers:
        handler = RichHandler(console=out, level=logging.WARNING, show_time=False,
                              show_path=False, markup=False, rich_tracebacks=False)
        handler.addFilter(ours)
        root.addHandler(handler)
        root.setLevel(logging.WARNING)


def demo(
    keep: Annotated[bool, typer.Option("--keep", help="Keep the demo directory afterwards.")]
    = False,
    directory: Annotated[Path | None, typer.Option(
        "--dir", help=("Run in this directory (new, empty, or an earlier demo's) instead of"
                       " a temporary one; removed afterwards unless --keep."),
        file_okay=False)] = None,
    es_url: Annotated[str | None, typer.Option(
        "--es-url", help="Also index the hits into this Elasticsearch/OpenSearch cluster.")]
    = None,
    es_backend: Annotated[str, typer.Option(
        "--es-backend", help="Client for --es-url: elasticsearch or opensearch.")]
    = "elasticsearch",
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print a JSON summary on stdout (progress goes to stderr).")] = False,
    rows: Annotated[int, typer.Option("--rows", hidden=True, min=10,
                                      help="Rows of the planted XLSX export.")] = 56_000,
) -> None:
    """Run a self-contained demo on 127.0.0.1: plant fictional leaks on local sites, crawl
    them once with the real crawler, and show the hits and the alerts they raise.

    Exit status 0 when every planted leak was found as expected and nothing harmless was
    reported, 1 otherwise.
    """
    from leaksentry.demo.report import check_items, render, run_ok
    from leaksentry.demo.runner import run_demo

    if es_backend not in ("elasticsearch", "opensearch"):
        raise typer.BadParameter("must be elasticsearch or opensearch", param_hint="--es-backend")
    out = err_console if as_json else console
    out.print(Text.assemble(
        ("leaksentry demo", "bold"),
        " — a fictional hospital register, leaks planted on local sites, one crawl cycle."
        " All data is generated; every site runs on 127.0.0.1."))
    steps = _Steps(out)
    _log_to(out)
    with steps.progress:
        run = run_demo(directory, keep=keep, es_url=es_url,
                       es_backend=es_backend, export_rows=rows, progress=steps)
    if as_json:
        summary = run.to_json()
        summary["kept"] = keep
        summary["checks"] = [{"item": c.item.key, "ok": c.ok} for c in check_items(run)]
        ok = run_ok(run)
        summary["ok"] = ok
        print(json.dumps(summary))
    else:
        ok = render(run, out, kept=keep)
    raise typer.Exit(0 if ok else 1)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
