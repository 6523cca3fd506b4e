"""The persistent job store: jobs survive a restart with their next run times; a
changed schedule is rescheduled, a removed source's job removed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from leaksentry.config import Settings
from scheduler.reload import desired_jobs, sync_jobs


def settings(*sources: dict, **daemon) -> Settings:
    return Settings.model_validate({"sources": list(sources), "daemon": daemon})


def src(name: str, **kw) -> dict:
    return {"name": name, "kind": "watch", "url": "http://127.0.0.1:9/", **kw}


def make_scheduler(db: Path) -> BackgroundScheduler:
    """A real scheduler on a real SQLite job store, started paused (nothing runs)."""
    s = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{db}")},
        executors={"crawls": ThreadPoolExecutor(1), "default": ThreadPoolExecutor(1)},
        timezone="UTC",
    )
    s.start(paused=True)
    return s


def test_jobs_persist_across_restart_with_next_run_kept(tmp_path):
    db = tmp_path / "scheduler.db"
    cfg = settings(src("a", every="1h"), src("b", cron="0 3 * * *"), retention="30d")
    first = make_scheduler(db)
    rep = sync_jobs(first, desired_jobs(cfg))
    assert sorted(rep.added) == ["crawl:a", "crawl:b", "health", "outbox", "retention", "spool"]
    before = {j.id: j.next_run_time for j in first.get_jobs()}
    job = first.get_job("crawl:a")
    assert job.max_instances == 1 and job.coalesce is True and job.misfire_grace_time == 60
    assert job.executor == "crawls" and job.args == ("a",)
    assert job.func_ref == "scheduler.jobs:crawl_job"
    first.shutdown(wait=False)

    second = make_scheduler(db)  # the restart
    rep = sync_jobs(second, desired_jobs(cfg))
    assert rep.added == [] and rep.rescheduled == [] and rep.removed == []
    after = {j.id: j.next_run_time for j in second.get_jobs()}
    assert after == before
    second.shutdown(wait=False)


def test_reschedule_add_remove(tmp_path):
    sched = make_scheduler(tmp_path / "scheduler.db")
    sync_jobs(sched, desired_jobs(settings(src("a", every="1h"), src("b", every="1h"))))
    old_b = sched.get_job("crawl:b").next_run_time
    new = settings(src("b", every="10s"), src("c", every="1h"), misfire_grace_time="5m")
    rep = sync_jobs(sched, desired_jobs(new))
    assert rep.removed == ["crawl:a"] and rep.added == ["crawl:c"]
    assert rep.rescheduled == ["crawl:b"]
    b = sched.get_job("crawl:b")
    assert b.trigger.interval == timedelta(seconds=10) and b.next_run_time < old_b
    assert b.misfire_grace_time == 300
    assert sched.get_job("crawl:a") is None
    # retention off: no retention job
    assert sched.get_job("retention") is None
    sched.shutdown(wait=False)


PUBLIC_KEY = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"


def test_evidence_retention_schedules_the_retention_job(tmp_path):
    cfg = Settings.model_validate({
        "sources": [src("a", every="1h")],
        "evidence": {"recipients": [PUBLIC_KEY], "retention": "30d"}})
    sched = make_scheduler(tmp_path / "scheduler.db")
    sync_jobs(sched, desired_jobs(cfg))
    job = sched.get_job("retention")
    assert job is not None and "delete evidence older than 30d" in job.name
    sched.shutdown(wait=False)
