"""The two halves of a big source's cluster run, each inside a `leaksentry crawl`.

- :func:`run_listing` (``--fan-out``): crawl the source's listing once; every item
  request goes to a :class:`Dispatcher`, which enqueues the items in batches of
  ``[cluster] item_batch`` on the source's queue. The seen store and the run's
  ``max_items`` budget are applied here, once, as in a local crawl.
- :func:`run_items` (``--part FILE``): fetch and scan one batch.

Both report their run as a part (:mod:`.runs`); the last one records the run.
The politeness of the source holds across all of them (crawler.middlewares.limiter).
A part whose worker died does not report (the job runs again elsewhere).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crawler.runner import run_crawl
from scheduler.cluster.app import Job, config_snapshot, queue_for
from scheduler.cluster.enqueue import send
from scheduler.cluster.runs import LISTING, note_sent, report_part

if TYPE_CHECKING:
    from leaksentry.config import Settings
    from pipelines.model import RunSummary


class Dispatcher:
    """Collects a listing's item requests and enqueues them in batches. The first
    batch stays with the listing process, which is running already (a batch in a new
    process costs a process start-up, ~2-3 s with the scanner loaded)."""

    def __init__(self, settings: Settings, source: str, run: str) -> None:
        self.settings = settings
        self.source = source
        self.run = run
        self.batch: list[dict[str, Any]] = []
        self.parts = 0
        self.size = settings.cluster.item_batch
        self.kept = 0
        self.config, self.sha = config_snapshot(settings)
        self.queue = queue_for(settings.crawler.effective(settings.source(source)),
                               settings.cluster)

    def add(self, item: dict[str, Any]) -> bool:
        """False: fetch this item here (the listing's own batch); True: enqueued."""
        if self.kept < self.size:
            self.kept += 1
            return False
        self.batch.append(item)
        if len(self.batch) >= self.size:
            self.flush()
        return True

    def flush(self) -> None:
        if not self.batch:
            return
        self.parts += 1
        batch, self.batch = self.batch, []
        send(self.settings.cluster, Job(source=self.source, config=self.config,
                                        config_sha256=self.sha, queue=self.queue,
                                        kind="items", run=self.run, part=self.parts,
                                        items=batch))
        # counted once sent: a listing that dies later closes the run with what it sent
        # (a part sent but not yet counted is still fetched; its report comes too late)
        note_sent(self.settings, self.run, self.parts)

    def close(self) -> int:
        self.flush()
        return self.parts


def _parent_alive() -> bool:
    """False when the worker that started this crawl has died: the job runs again
    elsewhere, and this part must not report (its rerun will). (An environment variable:
    the handshake between the worker and the crawl process it starts.)"""
    parent = os.environ.get("LEAKSENTRY_DIE_WITH_PARENT")
    return parent is None or str(os.getppid()) == parent


def run_listing(settings: Settings, source: str, run: str,
                overrides: dict[str, str] | None = None) -> RunSummary:

    dispatcher = Dispatcher(settings, source, run)

    def report(summary: RunSummary) -> None:
        if _parent_alive():
            parts = dispatcher.close()
            report_part(settings, source, run, LISTING, summary, total=parts + 1)

    return run_crawl(settings, source, dispatch=dispatcher, report=report, limit=True,
                     overrides=overrides)


def run_items(settings: Settings, source: str, part_file: Path,
              overrides: dict[str, str] | None = None) -> RunSummary:

    data = json.loads(part_file.read_text())

    def report(summary: RunSummary) -> None:
        if _parent_alive():
            report_part(settings, source, data["run"], int(data["part"]), summary)

    return run_crawl(settings, source, items=data["items"], report=report, limit=True,
                     overrides=overrides)
