"""Make the job store match a config: at start and on every SIGHUP.

A job whose schedule did not change keeps its next run time (so a restart or
a reload never shifts or repeats a source's schedule); a changed schedule is
rescheduled; sources no longer configured are removed. A job's name is the
human-readable description of its schedule and doubles as its signature.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from scheduler.schedule import (
    CRAWL_PREFIX,
    HEALTH,
    OUTBOX,
    RETENTION,
    SPOOL,
    human_duration,
    schedules,
)

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

    from leaksentry.config import Settings

log = logging.getLogger("leaksentry.scheduler.reload")

CRAWL_EXECUTOR = "crawls"
MAINTENANCE_EXECUTOR = "default"


@dataclass(frozen=True, slots=True)
class JobSpec:
    id: str
    func: str  # "module:function", what the job store pickles
    args: tuple[Any, ...]
    trigger: BaseTrigger
    name: str
    executor: str
    misfire_grace_time: int


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    rescheduled: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = [f"{len(self.added) + len(self.rescheduled) + len(self.kept)} job(s)"]
        for label, ids in (("added", self.added), ("removed", self.removed),
                           ("rescheduled", self.rescheduled)):
            if ids:
                parts.append(f"{label} {', '.join(sorted(ids))}")
        return "; ".join(parts)


def desired_jobs(settings: Settings) -> list[JobSpec]:
    """Every job the config asks for (raises ConfigError on a bad source schedule).

    A crawl job carries only its source name: which config it runs is the daemon's
    current snapshot, never a path fixed in the job store."""
    d = settings.daemon
    grace = max(1, round(d.misfire_grace_time))
    specs = [
        JobSpec(
            id=CRAWL_PREFIX + name, func="scheduler.jobs:crawl_job", args=(name,),
            trigger=sched.trigger(), name=sched.describe(), executor=CRAWL_EXECUTOR,
            misfire_grace_time=grace,
        )
        for name, sched in schedules(settings).items()
    ]
    periodic = [(OUTBOX, d.outbox_interval, "deliver the alert outbox"),
                (SPOOL, d.spool_interval, "drain the Elasticsearch spool"),
                (HEALTH, d.health_interval, "raise source-health alerts")]
    tasks = []
    if d.retention > 0:
        tasks.append(f"purge local data older than {human_duration(d.retention)}")
    if settings.evidence.enabled:
        tasks.append(f"delete evidence older than {human_duration(settings.evidence.retention)}")
    if settings.elasticsearch.enabled:
        tasks.append("drop expired Elasticsearch indices")
    if tasks:
        periodic.append((RETENTION, d.retention_interval, "; ".join(tasks)))
    for job_id, every, what in periodic:
        specs.append(JobSpec(
            id=job_id, func="scheduler.jobs:periodic_job", args=(job_id,),
            trigger=IntervalTrigger(seconds=every, timezone="UTC"),
            name=f"{what} every {human_duration(every)}", executor=MAINTENANCE_EXECUTOR,
            misfire_grace_time=grace,
        ))
    return specs


def sync_jobs(scheduler: BaseScheduler, specs: list[JobSpec]) -> SyncReport:
    report = SyncReport()
    wanted = {s.id: s for s in specs}
    for job in scheduler.get_jobs():
        if job.id not in wanted:
            scheduler.remove_job(job.id)
            report.removed.append(job.id)
    for spec in specs:
        job = scheduler.get_job(spec.id)
        if job is None:
            scheduler.add_job(
                spec.func, trigger=spec.trigger, args=spec.args, id=spec.id, name=spec.name,
                executor=spec.executor, misfire_grace_time=spec.misfire_grace_time,
                coalesce=True, max_instances=1, replace_existing=True,
            )
            report.added.append(spec.id)
            continue
        changes: dict[str, Any] = {}
        if tuple(job.args) != spec.args:
            changes["args"] = spec.args
        if job.misfire_grace_time != spec.misfire_grace_time:
            changes["misfire_grace_time"] = spec.misfire_grace_time
        if job.executor != spec.executor:
            changes["executor"] = spec.executor
        if job.name != spec.name:
            changes["name"] = spec.name
        if changes:
            scheduler.modify_job(spec.id, **changes)
        if job.name != spec.name:
            scheduler.reschedule_job(spec.id, trigger=spec.trigger)
            report.rescheduled.append(spec.id)
        else:
            report.kept.append(spec.id)
    return report
