"""Config a new user gets right the first time, through real crawl subprocesses and the
Telegram preview simulator (servers/telegram_preview.py): the channel's preview link as
``url``, ``extra_file_hosts`` beside the built-in list, the hint a refused private
address gives, and the crawl summary at full width when stdout is a pipe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from servers.telegram_preview import TelegramPreview

from leaksentry.config.sources import DEFAULT_FILE_HOSTS, CrawlerConfig

HERE = Path(__file__).parent


@pytest.fixture
def tg():
    srv = TelegramPreview(page_size=3).start()
    srv.add_channel("leakchan", "Leak Channel")
    srv.post("leakchan", "hello, new dumps every day")
    srv.post("leakchan", "full export here http://localhost:{port}/file/export.csv\n"
             "mirror http://127.0.0.1:{port}/file/other.csv".replace("{port}", str(srv.port)))
    srv.files["export.csv"] = b"name,ref\nA,1\n"
    srv.files["other.csv"] = b"name,ref\nB,2\n"
    yield srv
    srv.stop()


def test_preview_link_as_url_and_extra_file_hosts(tg: TelegramPreview, crawl_ws) -> None:
    """``url = "https://t.me/s/NAME"`` (what a browser shows) with no ``channel``: the
    preview is requested once per page at /s/NAME, never /s/NAME/s/NAME; and a host added
    with ``extra_file_hosts`` is followed while the built-in list stays in force."""
    crawl_ws.write([{"name": "tg", "kind": "telegram", "url": f"{tg.url}/s/leakchan",
                     "follow_links": True, "allow_private": True}],
                   crawler={"extra_file_hosts": ["localhost"]})
    r = crawl_ws.crawl("tg")
    assert r.run is not None and r.run["outcome"] == "ok", r.output[-2000:]
    assert tg.hits["/s/leakchan"] == 1
    assert not any("/s/leakchan/s/" in p for p in tg.hits)
    ids = sorted(d["item_id"] for d in crawl_ws.docs())
    assert ids == ["leakchan/1", "leakchan/2", f"link:http://localhost:{tg.port}/file/export.csv"]
    assert tg.hits["/file/other.csv"] == 0  # 127.0.0.1 is not a file host
    cfg = CrawlerConfig(extra_file_hosts=["localhost"])
    assert cfg.all_file_hosts == [*DEFAULT_FILE_HOSTS, "localhost"]
    assert CrawlerConfig(file_hosts=["only.example"]).all_file_hosts == ["only.example"]


def test_private_address_error_names_allow_private_and_the_url_once(tg: TelegramPreview,
                                                                    crawl_ws) -> None:
    crawl_ws.write([{"name": "tg", "kind": "telegram", "url": tg.url, "channel": "leakchan"}])
    r = crawl_ws.crawl("tg")
    assert r.run is not None and r.run["outcome"] == "error", r.output[-2000:]
    error = r.run["error"]
    url = f"{tg.url}/s/leakchan"
    assert error.count(url) == 1, error
    assert "loopback address" in error and "allow_private = true" in error
    assert tg.hits["/s/leakchan"] == 0


def test_crawl_summary_is_full_width_when_piped(tg: TelegramPreview, crawl_ws) -> None:
    name = "a-telegram-channel-with-a-name-long-enough-to-push-the-table-past-80-columns"
    crawl_ws.write([{"name": name, "kind": "telegram", "url": tg.url, "channel": "leakchan",
                     "allow_private": True}])
    env = dict(os.environ, LEAKSENTRY_HOME=str(crawl_ws.root / "state"))
    env.pop("COLUMNS", None)
    proc = subprocess.run([sys.executable, "-m", "leaksentry", "crawl", name, "--config",
                           str(crawl_ws.config), *crawl_ws.hooks()], capture_output=True,
                          text=True, env=env, timeout=120, cwd=crawl_ws.root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = [ln for ln in proc.stdout.splitlines() if name in ln]
    assert len(row) > 80
    cells = [c.strip() for c in row.strip(" │|").split("│")]
    assert cells[0] == name and cells[1] == "ok" and cells[4] == "2"  # new = 2 messages
    header = next(ln for ln in proc.stdout.splitlines() if "source" in ln)
    assert all(col in header for col in ("outcome", "discovered", "statuses", "seconds"))
