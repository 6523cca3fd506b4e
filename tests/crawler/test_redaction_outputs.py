"""Issue 20 item 7 and item 6 (userinfo): identifiers in a listing page's <title>, in the
URL and query of an item that fails, in feed item ids and paste titles never come back
in plaintext from `crawl` (human and --json), `source_runs`, `source_health`,
`seen_items`, `status` or the logs. Real crawls against local servers."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from conftest import CrawlWorkspace
from servers.loopback import QuietHandler

from leaksentry.redaction import mask

HKID, HKID2, HN = "A1234563", "AB9876543", "HN12345678A"
NEEDLES = ("123456", "987654", "12345678", "pw-s3cret")


class Site(QuietHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/archive"):
            body = (f"<html><head><title>Just a moment... {HKID[:-1]}({HKID[-1]}) {HN}"
                    f"</title></head><body></body></html>").encode()
            status = 200
        elif self.path.startswith("/list"):
            body = (f'<html><body><a href="/files/{HKID}.csv?who={HN}">x</a>'
                    f'<a href="/files/ok.txt">y</a></body></html>').encode()
            status = 200
        elif self.path == "/files/ok.txt":
            body, status = b"nothing here\n", 200
        else:
            body, status = b"not found", 404
        self.send_response(status)
        self.send_header("Content-Type", "text/html" if status == 200 else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def dump(ws: CrawlWorkspace) -> str:
    """Every row of every table, as text (the values as the store holds them), and the
    store's raw text (the SQLite file, or a pg_dump)."""
    store = ws.store()
    try:
        rows = "\n".join(repr([tuple(r) for r in store.conn.execute(f'select * from "{t}"')])
                         for t in sorted(store.tables()))
    finally:
        store.close()
    return rows + "\n" + ws.stored_text()


def test_titles_failing_urls_feed_ids_and_userinfo_are_redacted(
        crawl_ws: CrawlWorkspace, loopback: Any, pastebin: Any) -> None:
    srv = loopback(Site)
    pastebin.add(HKID, "a harmless paste\n", title=f"list of {HKID2[:-1]} ({HKID2[-1]})")
    crawl_ws.write([
        {"name": "cf", "kind": "listing", "url": f"{srv.url}/archive?ref={HKID2}",
         "link_css": "a", "allow_private": True, "obey_robots": False},
        {"name": "lst", "kind": "listing", "url": f"{srv.url}/list", "link_css": "a",
         "allow_private": True, "obey_robots": False, "delay": 0, "retry_max": 0},
        {"name": "pb", "preset": "pastebin", "allow_private": True, "delay": 0,
         "url": f"{pastebin.base}/api_scraping.php?limit=100"},
        {"name": "auth", "kind": "watch", "allow_private": True, "retry_max": 0,
         "urls": [f"http://soc:pw-s3cret@127.0.0.1:9/{HKID}?q={HN}"]},
    ], daemon={"log_level": "DEBUG"})
    outputs: list[str] = []
    runs = {}
    for name in ("cf", "lst", "pb", "auth"):
        res = crawl_ws.crawl(name)  # the metadata-only processor: no scanner needed
        outputs.append(res.output)
        runs[name] = res.run
    # human output too (the Rich table and the error lines)
    env = dict(os.environ, LEAKSENTRY_HOME=str(crawl_ws.root / "state"), COLUMNS="200")
    env.pop("LEAKSENTRY_CONFIG", None)
    for args in (["crawl", "cf"], ["status"], ["status", "--json"], ["hits", "--json"]):
        p = subprocess.run([sys.executable, "-m", "leaksentry", *args, "--config",
                            str(crawl_ws.config)], capture_output=True, text=True, env=env,
                           timeout=180)
        outputs += [p.stdout, p.stderr]
    assert runs["cf"]["outcome"] == "error" and "bot-check" in runs["cf"]["error"]
    assert mask("hkid", HKID).lower() in runs["cf"]["error"].lower()  # shown, masked
    assert runs["lst"]["statuses"].get("404") or runs["lst"]["statuses"].get("gone")
    assert runs["pb"]["outcome"] == "ok"
    seen = crawl_ws.query("select item_id, url, sealed_id from seen_items")
    assert len(seen) >= 3  # the pastebin key, the listing's two links
    text = "\n".join(outputs) + "\n" + dump(crawl_ws)
    for needle in NEEDLES:
        assert needle not in text, needle
    # the failed item is still known for a retry, by its real id and URL (sealed in the db)
    from leaksentry.store import seen as seen_store

    store = crawl_ws.store()
    try:
        items = seen_store.load_source(store.conn, "pb")
        assert HKID in items  # the raw key, opened again for the crawler
    finally:
        store.close()
