"""`leaksentry crawl`: exit codes, one-line errors, --all, the Rich summary."""

from __future__ import annotations

import subprocess
import sys

from conftest import CrawlWorkspace


def pb(state, name="pb", **kw):
    return {"name": name, "preset": "pastebin", "allow_private": True, "delay": 0,
            "url": f"{state.base}/api_scraping.php?limit=100", **kw}


def test_unknown_source_and_bad_config_are_one_line_errors(crawl_ws: CrawlWorkspace,
                                                           pastebin) -> None:
    crawl_ws.write([pb(pastebin)])
    r = crawl_ws.crawl("nosuch")
    assert r.proc.returncode == 2
    assert r.proc.stderr.strip().splitlines() == [
        "error: no source named 'nosuch' (known: pb)"]

    crawl_ws.config.write_text('[[sources]]\nname = "f"\nkind = "feed"\n'
                               'url = "https://x.example/api"\nid_path = "id"\n'
                               'raw_url_path = "raw"\n')
    r = crawl_ws.crawl("f")
    assert r.proc.returncode == 2
    lines = r.proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert 'sources[0] (f).items_path: required for kind "feed"' in lines[0]


def test_all_runs_every_source_in_its_own_process(crawl_ws: CrawlWorkspace, pastebin) -> None:
    pastebin.add("K0000001", "a paste\n")
    crawl_ws.write([pb(pastebin), pb(pastebin, name="broken",
                                     url=f"{pastebin.base}/missing.php"),
                    pb(pastebin, name="off", enabled=False)])
    env = dict(__import__("os").environ, LEAKSENTRY_HOME=str(crawl_ws.root / "state"),
               COLUMNS="200")
    # the -s settings go to every source's crawl process
    proc = subprocess.run([sys.executable, "-m", "leaksentry", "crawl", "--all", "--config",
                           str(crawl_ws.config), *crawl_ws.hooks()], capture_output=True,
                          text=True, env=env,
                          timeout=180)
    assert proc.returncode == 1  # one source errored
    assert "pb" in proc.stdout and "broken" in proc.stdout and " ok " in proc.stdout
    assert "broken: error:" in proc.stderr and "HTTP 404" in proc.stderr
    assert [r["outcome"] for r in crawl_ws.runs("pb")] == ["ok"]
    assert [r["outcome"] for r in crawl_ws.runs("broken")] == ["error"]
    assert crawl_ws.runs("off") == []
    assert len(crawl_ws.docs()) == 1
