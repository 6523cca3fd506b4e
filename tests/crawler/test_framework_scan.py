"""End to end through the real pipeline: a crawled paste is extracted, matched
against keyed fingerprints and recorded; no plaintext identifier anywhere."""

from __future__ import annotations

import random

from conftest import CrawlWorkspace

from leaksentry.synth import written_hkid, written_hn


def test_crawled_leak_is_scanned_recorded_and_never_echoed(crawl_ws: CrawlWorkspace,
                                                           pastebin, fingerprints) -> None:
    matching, people = fingerprints
    rng = random.Random(5)
    rows = [f"{p.name}, {written_hkid(p.hkid, rng)}, {written_hn(p.hn, rng)}" for p in people]
    pastebin.add("LEAK0001", "name, hkid, hn\n" + "\n".join(rows) + "\n", title="export")
    pastebin.add("BENIGN01", "nothing to see here\n")
    crawl_ws.write([{"name": "pb", "preset": "pastebin", "allow_private": True, "delay": 0,
                     "url": f"{pastebin.base}/api_scraping.php?limit=100"}],
                   matching=matching)
    r = crawl_ws.crawl("pb", scan=True)
    assert r.proc.returncode == 0, r.output
    assert r.run["outcome"] == "ok" and r.run["new"] == 2 and r.run["hits"] == 1, r.run
    hits = crawl_ws.query("SELECT * FROM hits")
    assert len(hits) == 1
    assert crawl_ws.seen("pb")["LEAK0001"]["status"] == "done"

    # a second crawl: nothing new, no second hit
    r2 = crawl_ws.crawl("pb", scan=True)
    assert r2.run["new"] == 0 and r2.run["hits"] == 0, r2.output
    assert len(crawl_ws.query("SELECT * FROM hits")) == 1

    # no identifier in any output or in the state store, canonical or as written
    forms = set()
    for p, row in zip(people, rows, strict=True):
        forms |= {p.hkid, p.hn, p.hkid[:-1], p.hn[2:-1]}
        forms |= {x.strip() for x in row.split(",")[1:]}
    blobs = [r.output, r2.output]
    stored = crawl_ws.stored_text()
    blobs += [stored, stored.encode("latin-1").decode("utf-8", "ignore")]
    for blob in blobs:
        for form in forms:
            assert form not in blob


def test_scanner_that_cannot_start_fails_the_run_before_fetching(crawl_ws: CrawlWorkspace,
                                                                 pastebin) -> None:
    pastebin.add("K0000001", "body\n")
    crawl_ws.write([{"name": "pb", "preset": "pastebin", "allow_private": True,
                     "url": f"{pastebin.base}/api_scraping.php"}],
                   matching={"key": str(crawl_ws.root / "missing.key"),
                             "fingerprints": str(crawl_ws.root / "missing.fp")})
    r = crawl_ws.crawl("pb", scan=True)
    assert r.proc.returncode == 1
    assert r.run["outcome"] == "error" and "cannot start the scanner" in r.run["error"]
    assert "missing.key" in r.run["error"]
    assert pastebin.hits["/api_scraping.php"] == 0  # nothing fetched, nothing marked seen
    assert crawl_ws.seen("pb") == {}
