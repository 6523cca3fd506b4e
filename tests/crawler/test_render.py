"""``listing`` with ``render = true``: Chromium (Debian's, via scrapy-playwright) renders a
page whose item links and item contents are written by JavaScript.

The local site (servers/js_listing.py) is a real page for a real browser: its raw HTML
holds neither the item links nor the identifiers, so only rendering finds them; the same
source without ``render`` finds nothing. Crawls run as subprocesses (``leaksentry crawl``).
"""

from __future__ import annotations

import asyncio
import random
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from parsel import Selector
from servers.js_listing import JsListingSite
from servers.planted import forms, write_planted

from crawler.playwright import BLOCKED_RESOURCE_TYPES, make_abort_request, render_meta
from leaksentry.config.sources import source_config
from leaksentry.synth import patients, written_hkid

pytestmark = pytest.mark.skipif(not Path("/usr/bin/chromium").exists(),
                                reason="Debian chromium not installed (make test installs it)")


def _site_items(people: list, n_items: int, rng: random.Random) -> dict[str, tuple[str, str]]:
    items = {}
    for i in range(n_items):
        group = people[i * 2:(i + 1) * 2]
        lines = [f"{p.name}\t{written_hkid(p.hkid, rng)}\t{p.procedure}" for p in group]
        items[f"pz{i:04d}x"] = (f"export part {i}", "patient list\n" + "\n".join(lines) + "\n")
    return items


@dataclass
class Rendered:
    site: JsListingSite
    people: list


@pytest.fixture
def js_site():
    people = list(patients(6, seed=41))
    site = JsListingSite(_site_items(people, 3, random.Random(7))).start()
    yield Rendered(site, people)
    site.stop()


def _source(site: JsListingSite, **over: object) -> dict:
    src = {"name": "jsite", "kind": "listing", "url": f"{site.url}/list",
           "link_css": "table.recent a.paste", "id_regex": r"/item/([a-z0-9]+)$",
           "allow_private": True, "render": True, "wait_selector": "a.paste",
           "item_wait_selector": "pre.ready", "wait_timeout": "20s"}
    src.update(over)
    return {k: v for k, v in src.items() if v is not None}


def _env(ws, people) -> dict[str, Any]:
    """``crawl()`` arguments: the planted-identifier processor (settings) on the path."""
    planted = ws.root / "planted.json"
    write_planted(planted, people)
    return {"settings": {"LEAKSENTRY_PROCESSOR": "servers.planted.PlantedRefsProcessor",
                         "LEAKSENTRY_PLANTED": str(planted)},
            "env": {"PYTHONPATH": str(Path(__file__).parent)}}


def _stats(output: str) -> dict[str, int]:
    """Integer stats from the crawl's "Dumping Scrapy stats" log block."""
    return {k: int(v) for k, v in re.findall(r"'([\w/.-]+)': (\d+),?\n", output)}


def test_raw_html_holds_neither_links_nor_identifiers(js_site: Rendered) -> None:
    site = js_site.site
    listing = urllib.request.urlopen(f"{site.url}/list").read().decode()
    assert Selector(text=listing).css("table.recent a.paste") == []
    for item_id in site.items:
        assert item_id not in listing
        page = urllib.request.urlopen(f"{site.url}/item/{item_id}").read().decode()
        for form in forms(js_site.people):
            assert form not in page


def test_rendered_listing_finds_js_written_identifiers_once(js_site: Rendered,
                                                             crawl_ws) -> None:
    site, people = js_site.site, js_site.people
    ws = crawl_ws
    ws.write([_source(site)])
    env = _env(ws, people)

    first = ws.crawl("jsite", **env, timeout=180)
    assert first.run is not None, first.output[-2000:]
    assert first.run["outcome"] == "ok", first.output[-2000:]
    assert first.run["discovered"] == 3 and first.run["new"] == 3
    docs = ws.docs()
    assert sorted(d["item_id"] for d in docs) == sorted(site.items)
    found = sorted({r for d in docs for r in d["refs"]}, key=int)
    assert found == [p.ref for p in people]  # every identifier, written by JavaScript
    assert all(d["url"].startswith(f"{site.url}/item/") for d in docs)
    # Chromium ran the scripts (the API call) but fetched no blocked resource
    assert site.hits["/api/recent"] >= 1
    for path in ("/static/site.css", "/static/logo.png", "/static/intro.mp4",
                 "/static/x.woff2"):
        assert site.hits[path] == 0, path
    # every Chromium page was closed: by the handler (listing) or the page pool (items)
    stats = _stats(first.output)
    assert stats["playwright/page_count"] >= 2
    assert stats["playwright/page_count"] == stats.get("playwright/page_count/closed", 0) \
        + stats.get("leaksentry/pages_closed_by_pool", 0)
    # nothing printed or stored holds an identifier in plaintext
    stored = ws.stored_text()
    for form in forms(people):
        assert form not in first.output and form not in stored

    # second crawl: the listing is rendered again, no item is fetched again
    second = ws.crawl("jsite", **env, timeout=180)
    assert second.run["outcome"] == "ok", second.output[-2000:]
    assert second.run["discovered"] == 3
    assert second.run["fetched"] == 0 and second.run["new"] == 0
    assert len(ws.docs()) == 3

    # a new item appears: only it is fetched
    more = list(patients(8, seed=41))[6:]
    site.items["pz0099x"] = ("late export", f"{more[0].name} {more[0].hkid}\n")
    third = ws.crawl("jsite", **env, timeout=180)
    assert third.run["fetched"] == 1 and third.run["new"] == 1
    assert ws.docs()[-1]["item_id"] == "pz0099x"


def test_same_source_without_render_finds_nothing(js_site: Rendered, crawl_ws) -> None:
    ws = crawl_ws
    ws.write([_source(js_site.site, render=False, wait_selector=None,
                      item_wait_selector=None)])
    res = ws.crawl("jsite", **_env(ws, js_site.people))
    assert res.run is not None, res.output[-2000:]
    assert res.run["discovered"] == 0 and res.run["fetched"] == 0
    assert ws.docs() == []
    assert js_site.site.hits["/api/recent"] == 0  # no script ran


def test_wait_selector_that_never_appears_is_a_recorded_source_error(js_site: Rendered,
                                                                    crawl_ws) -> None:
    ws = crawl_ws
    ws.write([_source(js_site.site, wait_selector="div.never-there", wait_timeout="2s",
                      retry_max=0)])
    res = ws.crawl("jsite", **_env(ws, js_site.people), timeout=180)
    assert res.run is not None, res.output[-2000:]
    assert res.run["outcome"] == "error"
    assert "jsite" in ws.query("SELECT source FROM source_runs")[0]["source"]
    assert res.run["error"] and "/list" in res.run["error"]


# -- the browser-side request filter, on real Chromium pages -------------------------------

async def _in_chromium(scenario):
    """Run ``scenario(browser)`` with Debian's Chromium driven by Playwright in this
    process (loopback pages only: no guard proxy is needed to reach them)."""
    from playwright.async_api import async_playwright

    from crawler.runner import PLAYWRIGHT_ARGS

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium",
                                           args=list(PLAYWRIGHT_ARGS))
        try:
            return await scenario(browser)
        finally:
            await browser.close()


def _route_listing(url: str, abort) -> list[tuple[str, str, bool]]:
    """Load ``url`` in Chromium with ``abort`` deciding every request, as scrapy-playwright
    does with ``PLAYWRIGHT_ABORT_REQUEST``; (path, resource type, aborted) per request."""
    from urllib.parse import urlsplit

    seen: list[tuple[str, str, bool]] = []

    async def scenario(browser) -> None:
        page = await browser.new_page()

        async def route(r) -> None:
            aborted = await abort(r.request)
            seen.append((urlsplit(r.request.url).path, r.request.resource_type, aborted))
            await (r.abort() if aborted else r.continue_())

        await page.route("**/*", route)
        await page.goto(url, wait_until="load")
        await page.wait_for_selector("a.paste", timeout=20_000)  # the API call came back
        await page.wait_for_load_state("networkidle")

    asyncio.run(_in_chromium(scenario))
    return seen


def test_abort_request_blocks_heavy_resources_in_chromium(js_site: Rendered) -> None:
    """The listing pulls a stylesheet, an image and a video: Chromium asks for each, the
    filter aborts them (the server never sees them); the page, its script's API call and
    the rendered rows go through."""
    site = js_site.site
    seen = _route_listing(f"{site.url}/list", make_abort_request(block_resources=True))
    types = {t for _, t, _ in seen}
    assert {"stylesheet", "image", "media"} <= types, seen
    for path, rtype, aborted in seen:
        assert aborted == (rtype in BLOCKED_RESOURCE_TYPES), (path, rtype)
    assert ("/list", "document", False) in seen and ("/api/recent", "fetch", False) in seen
    for path in ("/static/site.css", "/static/logo.png", "/static/intro.mp4",
                 "/static/x.woff2"):
        assert site.hits[path] == 0, path
    assert site.hits["/api/recent"] == 1


def test_abort_request_without_blocking_lets_every_http_request_through(
        js_site: Rendered) -> None:
    site = js_site.site
    seen = _route_listing(f"{site.url}/list", make_abort_request(block_resources=False))
    assert {"document", "fetch", "stylesheet", "image"} <= {t for _, t, _ in seen}, seen
    assert not any(aborted for _, _, aborted in seen)
    assert site.hits["/static/site.css"] == 1 and site.hits["/static/logo.png"] == 1


def test_abort_request_refuses_a_non_http_scheme_a_real_page_asks_for(loopback) -> None:
    """An ``ftp:`` image on a real page reaches Playwright's routing: the filter aborts
    it, while the page itself goes through."""
    from servers.loopback import QuietHandler

    class Page(QuietHandler):
        def do_GET(self) -> None:
            self.send_body(200, b'<img src="ftp://127.0.0.1:9/x.png">', "text/html")

    page = loopback(Page)
    seen = []
    abort = make_abort_request(block_resources=False)

    async def scenario(browser) -> None:
        tab = await browser.new_page()

        async def route(r) -> None:
            aborted = await abort(r.request)
            seen.append((r.request.url.split(":", 1)[0], aborted))
            await (r.abort() if aborted else r.continue_())

        await tab.route("**/*", route)
        await tab.goto(f"{page.url}/", wait_until="load")

    asyncio.run(_in_chromium(scenario))
    assert ("http", False) in seen and ("ftp", True) in seen, seen


@dataclass
class _FakePlaywrightRequest:
    """Kept a fake for the schemes no real page can show: Chromium never hands file:,
    chrome:, filesystem: or unknown-scheme requests of a web page to Playwright's routing
    (an iframe or fetch() to them is refused inside the browser), so the filter's check
    is a second line nothing real reaches. Only ``url`` and ``resource_type`` are read."""

    url: str
    resource_type: str = "document"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "chrome://settings/",
                                 "ws-unknown://x/", "filesystem:http://x/temporary/a"])
def test_abort_request_refuses_non_http_schemes(url: str) -> None:
    """Addresses are checked by the guard proxy (test_render_guard.py); schemes here."""
    abort = make_abort_request(block_resources=True)
    for rtype in ("document", "xhr", "fetch", "script"):
        assert asyncio.run(abort(_FakePlaywrightRequest(url, rtype))) is True


def test_render_meta_never_hands_pages_to_callbacks() -> None:
    src = source_config(name="x", kind="listing", url="https://example.org/", link_css="a",
                       render=True, wait_selector="a.paste", wait_timeout=5,
                       max_download_size=2**20)
    meta = render_meta(src, src.wait_selector)
    assert meta["playwright"] is True and meta["playwright_include_page"] is False
    method, size = meta["playwright_page_methods"]
    assert method.method == "wait_for_selector" and method.args == ("a.paste",)
    assert method.kwargs["timeout"] == 5000
    assert size.method == "evaluate" and size.args[1] == src.max_download_size
    idle = render_meta(src, None)["playwright_page_methods"][0]
    assert idle.method == "wait_for_load_state" and idle.args == ("networkidle",)


@pytest.mark.slow
def test_rendered_identifiers_become_hits_through_the_real_scanner(js_site: Rendered,
                                                                   crawl_ws) -> None:
    """End to end: keygen, fingerprints of the fictional register, a rendered crawl with
    the real scanner, hits in the state store with the right record refs."""
    import csv
    import json
    import subprocess
    import sys

    from leaksentry.synth import register_rows

    ws = crawl_ws
    register = ws.root / "register.csv"
    with register.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(register_rows(6, seed=41))  # the site's six patients

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "leaksentry", *args], capture_output=True,
                              text=True, cwd=ws.root, timeout=120,
                              env={**__import__("os").environ,
                                   "LEAKSENTRY_HOME": str(ws.root / "state")})

    key, fp = ws.root / "key", ws.root / "register.fp"
    assert cli("keygen", "--out", str(key)).returncode == 0
    built = cli("fingerprints", "build", "--key", str(key), "--out", str(fp),
                "--ref-column", "ref", str(register))
    assert built.returncode == 0, built.stderr
    ws.write([_source(js_site.site)], matching={"key": str(key), "fingerprints": str(fp)})
    res = ws.crawl("jsite", scan=True, timeout=240)
    assert res.run is not None and res.run["outcome"] == "ok", res.output[-3000:]
    assert res.run["hits"] == 3
    hits = cli("hits", "--json", "--config", str(ws.config))
    assert hits.returncode == 0, hits.stderr
    refs = set()
    for line in hits.stdout.splitlines():
        refs.update(json.loads(line).get("record_refs") or [])
    assert refs == {p.ref for p in js_site.people}
    for form in forms(js_site.people):
        assert form not in res.output and form not in hits.stdout


def test_rendered_response_refused_by_the_guard_proxy_is_discarded() -> None:
    """Redirect hops inside Chromium bypass the downloader middlewares; the guard proxy
    answers a refused hop with a marked 403, and the callback discards it."""
    from scrapy.http import HtmlResponse

    from crawler.guard_proxy import REFUSED_HEADER
    from crawler.playwright import blocked_response

    msg = "169.254.169.254:80: refused: 169.254.169.254 is a cloud metadata address"
    refused = HtmlResponse("http://169.254.169.254/", status=403, body=b"x",
                           flags=["playwright"], headers={REFUSED_HEADER: msg})
    assert blocked_response(refused) == msg
    site_403 = HtmlResponse("https://example.org/", status=403, body=b"", flags=["playwright"])
    assert blocked_response(site_403) is None
    plain = HtmlResponse("https://example.org/", status=403, body=b"",
                         headers={REFUSED_HEADER: msg})
    assert blocked_response(plain) is None  # not rendered: the middleware checked it


def test_page_pool_reuses_closes_surplus_and_closes_everything_at_the_end() -> None:
    """With real Chromium pages."""
    from crawler.playwright import PagePool

    async def scenario(browser) -> tuple[PagePool, list[bool]]:
        pool = PagePool(limit=2)
        pages = [await browser.new_page() for _ in range(4)]
        assert pool.take() is None
        for p in pages[:3]:
            pool.release(p)  # the third does not fit: closed
        assert pool.take() is pages[1] and pool.take() is pages[0] and pool.take() is None
        pool.release(pages[0])
        pool.discard(pages[3])  # after a failure
        await pages[1].close()  # e.g. closed by its callback
        pool.release(pages[1])  # already closed: ignored
        await pool.close()
        return pool, [p.is_closed() for p in pages]

    pool, closed = asyncio.run(_in_chromium(scenario))
    assert all(closed)
    assert pool.closed == 3 and pool.free == []


def test_rendered_response_middleware_applies_size_and_guard() -> None:
    from scrapy.http import HtmlResponse, Request

    from crawler.guard_proxy import REFUSED_HEADER
    from crawler.middlewares.guard import BlockedAddress
    from crawler.playwright import RenderedResponseMiddleware, RenderedTooLarge

    mw = RenderedResponseMiddleware(maxsize=100)
    req = Request("https://example.org/")
    small = HtmlResponse(req.url, body=b"x" * 100, flags=["playwright"])
    assert mw.process_response(req, small) is small
    with pytest.raises(RenderedTooLarge, match="maxsize"):
        mw.process_response(req, HtmlResponse(req.url, body=b"x" * 101, flags=["playwright"]))
    plain = HtmlResponse(req.url, body=b"x" * 101)  # Scrapy's own download: its own limit
    assert mw.process_response(req, plain) is plain
    refused = HtmlResponse(req.url, status=403, body=b"", flags=["playwright"],
                           headers={REFUSED_HEADER: "x: refused: 10.0.0.1 is a private address"})
    with pytest.raises(BlockedAddress, match="refused"):
        mw.process_response(req, refused)


def test_browser_requests_carry_no_credential_headers(loopback) -> None:
    """Chromium sends the Scrapy headers on every navigation of a page (iframes of any
    origin) and Playwright keeps them across redirects: credentials never go in. A real
    page on 127.0.0.1 embeds a frame from another origin (localhost); the filter decides
    every request's headers, as scrapy-playwright does, and the server records what
    arrived."""
    from scrapy.http import Headers
    from servers.loopback import QuietHandler

    from crawler.playwright import make_header_filter

    class Site(QuietHandler):
        def do_GET(self) -> None:
            self.server.got.append((self.path, {k.lower() for k in self.headers}))  # type: ignore[attr-defined]
            if self.path == "/page":
                port = self.server.server_address[1]
                body = f'<iframe src="http://localhost:{port}/frame"></iframe>'.encode()
                self.send_body(200, body, "text/html")
            else:
                self.send_body(200, b"frame", "text/html")

    site = loopback(Site, got=[])
    headers = Headers({"X-Api-Key": "k", "Authorization": "Bearer t", "X-Feed": "f",
                       "Accept": "text/html", "User-Agent": "leaksentry"})
    decide = make_header_filter("X-Feed")

    async def scenario(browser) -> None:
        page = await browser.new_page()

        async def route(r) -> None:
            got = await decide(browser_type_name="chromium", playwright_request=r.request,
                               scrapy_request_data={"headers": headers})
            await r.continue_(headers=got)

        await page.route("**/*", route)
        await page.goto(f"{site.url}/page", wait_until="load")
        await page.wait_for_load_state("networkidle")

    asyncio.run(_in_chromium(scenario))
    got = dict(site.httpd.got)
    assert set(got) >= {"/page", "/frame"}, got  # the other origin's frame was loaded
    for path, names in got.items():
        assert not names & {"x-api-key", "authorization", "x-feed"}, (path, names)
        assert "user-agent" in names
