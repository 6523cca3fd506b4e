"""Source schedules -> APScheduler triggers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from leaksentry.config import Settings
from leaksentry.config.sources import WatchSource
from leaksentry.errors import ConfigError
from scheduler.schedule import schedules, source_schedule


def settings(*sources: dict, **daemon) -> Settings:
    return Settings.model_validate({"sources": list(sources), "daemon": daemon})


def src(name: str, **kw) -> dict:
    return {"name": name, "kind": "watch", "url": "http://127.0.0.1:9/", **kw}


def test_every_jitter_and_timeout():
    s = settings(src("a", every="90s", jitter="5s", timeout="2m"))
    sch = schedules(s)["a"]
    assert (sch.every, sch.cron, sch.jitter, sch.timeout) == (90, None, 5, 120)
    trig = sch.trigger()
    assert isinstance(trig, IntervalTrigger)
    assert trig.interval == timedelta(seconds=90) and trig.jitter == 5


def test_cron_schedule_with_jitter():
    s = settings(src("c", cron="*/5 * * * *", jitter="10s"))
    trig = schedules(s)["c"].trigger()
    assert isinstance(trig, CronTrigger) and trig.jitter == 10
    nxt = trig.get_next_fire_time(None, datetime(2026, 1, 1, 0, 1, tzinfo=UTC))
    assert nxt is not None and nxt.minute in (5, 6)


def test_defaults_come_from_daemon_and_crawler_sections():
    s = Settings.model_validate({"sources": [src("d")],
                                 "daemon": {"default_every": "7m", "jitter": "3s"},
                                 "crawler": {"timeout": "11m"}})
    sch = schedules(s)["d"]
    assert (sch.every, sch.jitter, sch.timeout) == (420, 3, 660)
    # an explicit jitter (even 0) wins over the [daemon] default
    s2 = Settings.model_validate({"sources": [src("d", jitter=0)], "daemon": {"jitter": "3s"}})
    assert schedules(s2)["d"].jitter == 0


def test_disabled_sources_are_not_scheduled():
    s = settings(src("on", every="1m"), src("off", every="1m", enabled=False))
    assert list(schedules(s)) == ["on"]


def test_describe_changes_with_schedule_only():
    a = schedules(settings(src("a", every="1m")))["a"].describe()
    b = schedules(settings(src("a", every="1m", timeout="5m")))["a"].describe()
    c = schedules(settings(src("a", every="2m")))["a"].describe()
    assert a == b and a != c


def test_bad_cron_names_source():
    # the config refuses such a cron already; built without validation, the schedule
    # still names the field
    src = WatchSource.model_construct(name="x", kind="watch", cron="61 * * * *")
    with pytest.raises(ConfigError, match=r"sources\[4\] \(x\)\.cron"):
        source_schedule(src, settings(), 4)
