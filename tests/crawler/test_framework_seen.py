"""The seen store: first-seen at once, done only after processing, versions,
content hashes, re-queue with retry times, gone, per-source state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from leaksentry.store import seen
from leaksentry.store.db import Store


def test_lifecycle(tmp_path) -> None:
    conn = Store(tmp_path / "s.db").conn
    assert seen.needs_fetch(None)
    item = seen.discovered(conn, "src", "a", "https://x.example/a")
    assert item.status == "pending" and item.first_seen
    assert seen.needs_fetch(item)
    assert seen.content_changed(conn, "src", "a", "h1")
    seen.processed(conn, "src", "a", "h1", version="v1", etag='"e"')
    item = seen.get_item(conn, "src", "a")
    assert item.status == "done" and item.etag == '"e"'
    assert not seen.needs_fetch(item) and not seen.needs_fetch(item, "v1")
    assert seen.needs_fetch(item, "v2")  # edited upstream
    assert not seen.content_changed(conn, "src", "a", "h1")
    assert seen.content_changed(conn, "src", "a", "h2")
    assert seen.get_item(conn, "other", "a") is None  # per source


def test_requeue_and_due(tmp_path) -> None:
    conn = Store(tmp_path / "s.db").conn
    now = datetime.now(UTC)
    assert seen.requeue(conn, "src", "b", "https://x.example/b", now + timedelta(minutes=1),
                        "not ready")
    item = seen.get_item(conn, "src", "b")
    assert item.status == "retry" and item.attempts == 1
    assert not seen.needs_fetch(item, now=now)
    assert seen.needs_fetch(item, now=now + timedelta(minutes=2))
    assert seen.due_retries(conn, "src", now=now) == []
    assert [i.item_id for i in seen.due_retries(conn, "src", now=now + timedelta(minutes=2))] \
        == ["b"]
    for _ in range(2):
        seen.requeue(conn, "src", "b", None, now, "again", max_attempts=3)
    assert seen.get_item(conn, "src", "b").status == "failed"  # recorded, not retried forever
    seen.gone(conn, "src", "c", "deleted upstream")
    assert not seen.needs_fetch(seen.get_item(conn, "src", "c"))
    assert seen.counts(conn, "src") == {"failed": 1, "gone": 1}


def test_source_state(tmp_path) -> None:
    conn = Store(tmp_path / "s.db").conn
    assert seen.get_state(conn, "src", "etag:u") is None
    seen.set_state(conn, "src", "etag:u", '"1"')
    seen.set_state(conn, "src", "etag:u", '"2"')
    assert seen.get_state(conn, "src", "etag:u") == '"2"'
