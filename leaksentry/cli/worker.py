"""`leaksentry worker`: run the cluster's crawl jobs (see scheduler/cluster/worker.py).

Imports inside the command: `leaksentry --help` does not load the cluster worker
(Celery, Scrapy) (start-up, bench/bench_cli.py).
"""

from __future__ import annotations

from typing import Annotated

import typer

from leaksentry.cli.common import ConfigOption


def worker(
    config: ConfigOption = None,
    queues: Annotated[str | None, typer.Option(
        "--queues", "-Q", help="Comma-separated queues to take jobs from (default: the"
        " \\[cluster] http_queue and browser_queue; browser jobs need Chromium).")] = None,
    concurrency: Annotated[int, typer.Option(
        "--concurrency", min=1, max=256, help="Jobs run at once (one crawl process each).")] = 2,
    name: Annotated[str | None, typer.Option(
        "--name", help="Worker name (default: workerPID@HOST).")] = None,
    health_port: Annotated[int | None, typer.Option(
        "--health-port", min=0, max=65535,
        help="/healthz and /metrics port (default: \\[cluster] worker_health_port;"
        " 0 = any free port).")] = None,
) -> None:
    """Take crawl jobs from the cluster's queues and run each in a fresh process.

    SIGTERM lets running crawls finish (a second one stops at once; the jobs of a
    worker that died run again on another worker after the visibility timeout).
    """
    from scheduler.cluster.worker import run_worker

    qs = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    raise typer.Exit(run_worker(config, qs, concurrency, name, health_port))


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
