"""From a source's `every`/`cron`, `jitter` and `timeout` to an APScheduler trigger.

Sources are defined by the crawler's config module; this module reads only
the schedule fields, with the [daemon] defaults for whatever a source leaves
out, so the scheduler does not depend on how sources describe their kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from leaksentry.config.sources import DEFAULT_CRAWL_TIMEOUT
from leaksentry.errors import ConfigError

if TYPE_CHECKING:
    from leaksentry.config import Settings
    from leaksentry.config.sources import SourceConfig


#: ids of the daemon's periodic jobs; crawl jobs are ``crawl:<source>`` (here, not in
#: scheduler.jobs, so that `status` reads the job store without loading the jobs' code)
OUTBOX, SPOOL, HEALTH, RETENTION = "outbox", "spool", "health", "retention"
CRAWL_PREFIX = "crawl:"


@dataclass(frozen=True, slots=True)
class SourceSchedule:
    """When and for how long one source runs."""

    source: str
    every: float | None  # seconds, when interval-scheduled
    cron: str | None  # crontab expression, when cron-scheduled
    jitter: float  # seconds
    timeout: float  # seconds before SIGTERM
    enabled: bool = True

    def trigger(self) -> BaseTrigger:
        jitter = round(self.jitter) or None
        if self.cron:
            trigger = CronTrigger.from_crontab(self.cron, timezone="UTC")
            trigger.jitter = jitter
            return trigger
        assert self.every is not None
        return IntervalTrigger(seconds=self.every, jitter=jitter, timezone="UTC")

    def describe(self) -> str:
        """Stable text used as the job's name: a changed schedule means a rescheduled job."""
        when = f"cron '{self.cron}'" if self.cron else f"every {_fmt(self.every or 0)}"
        return f"crawl {self.source} {when} jitter {_fmt(self.jitter)}"


def _fmt(seconds: float) -> str:
    return human_duration(seconds)


def human_duration(seconds: float) -> str:
    """90 -> '90s', 3600 -> '1h', 172800 -> '2d' (whole units only, else seconds)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def source_schedule(source: SourceConfig, settings: Settings, index: int = 0) -> SourceSchedule:
    """The schedule of one `[[sources]]` entry; a bad cron raises ConfigError naming it.

    The crawl time limit is the source's ``timeout``, else ``[crawler] timeout``.
    """
    daemon = settings.daemon
    name = source.name
    where = f"sources[{index}] ({name})"
    cron = source.cron or None
    every = source.every
    if cron and every:
        raise ConfigError(f"{where}: set either 'every' or 'cron', not both")
    if not cron and not every:
        every = daemon.default_every
    # a jitter left at the model default takes the [daemon] one; an explicit one (even 0) wins
    jitter = source.jitter if "jitter" in source.model_fields_set else daemon.jitter
    timeout = settings.crawler.effective(source).timeout
    sched = SourceSchedule(
        source=name, every=every, cron=cron, jitter=jitter,
        timeout=timeout if timeout > 0 else DEFAULT_CRAWL_TIMEOUT, enabled=source.enabled,
    )
    if cron:
        try:
            sched.trigger()
        except ValueError as exc:
            raise ConfigError(f"{where}.cron: invalid cron expression {cron!r}: {exc}") from None
    return sched


def schedules(settings: Settings) -> dict[str, SourceSchedule]:
    """Every enabled source's schedule, keyed by name (validates them all)."""
    out: dict[str, SourceSchedule] = {}
    for i, src in enumerate(settings.sources):
        sched = source_schedule(src, settings, i)
        if sched.enabled:
            out[sched.source] = sched
    return out
