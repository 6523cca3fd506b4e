"""``listing`` sources (no browser) against servers/archive_site.py, a simulator of
Pastebin's public archive page (https://pastebin.com/archive markup, ``/raw/{id}``
bodies, Cloudflare's "Just a moment..." check), using the ``pastebin-archive`` preset
with its URLs pointed at the simulator. Crawls run as subprocesses."""

from __future__ import annotations

import urllib.request

import pytest
from parsel import Selector
from servers.archive_site import ArchiveSite

from crawler.spiders.listing import item_id_for, item_links
from leaksentry.config.presets import PRESETS
from leaksentry.config.presets_web import WEB_PRESETS
from leaksentry.config.sources import source_config
from leaksentry.synth import patients

PASTES = {f"Ab{i:02d}xYz9"[:8]: (f"paste {i}", f"notes {i}\n") for i in range(6)}


@pytest.fixture
def archive():
    site = ArchiveSite(dict(PASTES)).start()
    yield site
    site.stop()


def _source(site: ArchiveSite, **over: object) -> dict:
    src = {"name": "pb-archive", "preset": "pastebin-archive", "url": f"{site.url}/archive",
           "raw_url_template": f"{site.url}/raw/{{id}}", "allow_private": True,
           "delay": 0, "concurrency": 4}
    src.update(over)
    return {k: v for k, v in src.items() if v is not None}


def test_archive_page_items_fetched_from_raw_urls_once(archive: ArchiveSite, crawl_ws):
    ws = crawl_ws
    ws.write([_source(archive)])
    first = ws.crawl("pb-archive")
    assert first.run is not None, first.output[-2000:]
    assert first.run["outcome"] == "ok", first.output[-2000:]
    # six rows; the sidebar repeats links and /archive/text is a syntax link: not items
    assert first.run["discovered"] == 6 and first.run["new"] == 6
    docs = {d["item_id"]: d for d in ws.docs()}
    assert sorted(docs) == sorted(PASTES)
    some = sorted(PASTES)[0]
    assert docs[some]["url"] == f"{archive.url}/{some}"  # the paste page, not /raw/
    assert archive.hits[f"/raw/{some}"] == 1 and archive.hits[f"/{some}"] == 0
    assert archive.hits["/robots.txt"] == 1  # robots.txt obeyed for HTML sources

    second = ws.crawl("pb-archive")
    assert second.run["discovered"] == 6 and second.run["fetched"] == 0
    assert archive.hits[f"/raw/{some}"] == 1

    # a new paste, and one deleted between listing and fetch
    p = next(iter(patients(1, seed=5)))
    archive.pastes["NewPst01"] = ("fresh", f"{p.name} {p.hkid}\n")
    archive.pastes["Gone0001"] = ("deleted soon", "x")
    archive.deleted.add("Gone0001")
    third = ws.crawl("pb-archive")
    assert third.run["outcome"] == "ok", third.output[-2000:]
    assert third.run["new"] == 1 and ws.docs()[-1]["item_id"] == "NewPst01"
    assert ws.seen("pb-archive")["Gone0001"]["status"] == "gone"
    assert third.run["statuses"]["gone"] == 1
    assert p.hkid not in third.output


def test_item_pages_are_documents_without_raw_template(archive: ArchiveSite, crawl_ws):
    crawl_ws.write([_source(archive, raw_url_template=None, preset=None, kind="listing",
                            link_css="table.maintable tr td:first-child a",
                            id_regex=r"^/([A-Za-z0-9]{8})$")])
    res = crawl_ws.crawl("pb-archive")
    assert res.run["outcome"] == "ok", res.output[-2000:]
    assert {d["url"] for d in crawl_ws.docs()} == {f"{archive.url}/{k}" for k in PASTES}


def test_bot_check_page_is_a_recorded_source_error(archive: ArchiveSite, crawl_ws):
    archive.challenge = True
    crawl_ws.write([_source(archive, retry_max=0)])
    res = crawl_ws.crawl("pb-archive")
    assert res.run["outcome"] == "error", res.output[-2000:]
    assert "/archive" in res.run["error"] and "403" in res.run["error"]
    assert crawl_ws.docs() == []


def test_challenge_served_with_200_is_recognised(crawl_ws, loopback):
    from servers.archive_site import CHALLENGE
    from servers.loopback import QuietHandler

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            self.send_body(200, CHALLENGE, "text/html")

    srv = loopback(Handler)
    crawl_ws.write([{"name": "cf", "kind": "listing", "url": f"{srv.url}/archive",
                     "link_css": "a", "allow_private": True, "obey_robots": False}])
    res = crawl_ws.crawl("cf")
    assert res.run["outcome"] == "error" and "bot-check" in res.run["error"]


def _body(site: ArchiveSite, path: str) -> str:
    return urllib.request.urlopen(site.url + path).read().decode()


def test_preset_selectors_on_the_archive_markup(archive: ArchiveSite):
    preset = WEB_PRESETS["pastebin-archive"]
    sel = Selector(text=_body(archive, "/archive"))
    links = item_links(sel, preset["link_css"])
    assert links == [f"/{k}" for k in reversed(PASTES)]  # table rows only, newest first
    assert [item_id_for(f"https://pastebin.com{h}", preset["id_regex"]) for h in links] == \
        list(reversed(PASTES))
    assert item_id_for("https://pastebin.com/archive/text", preset["id_regex"]) is None


def test_selectors_may_pick_attributes_text_or_elements():
    sel = Selector(text="<div><a href='/a1'>x</a><a href='/a1'>dup</a><span>/t2</span>"
                        "<a href='javascript:void(0)'>j</a><img src='/i3'></div>")
    assert item_links(sel, "a") == ["/a1"]
    assert item_links(sel, "a::attr(href)") == ["/a1", "javascript:void(0)"][:1]
    assert item_links(sel, None, "//span/text()") == ["/t2"]
    assert item_links(sel, "img", "//span") == ["/i3", "/t2"]
    assert item_id_for("https://h/view/abc", r"/view/(\w+)") == "abc"
    assert item_id_for("https://h/x?id=9", r"id=\d+") == "id=9"
    assert item_id_for("https://h/x", None) == "https://h/x"


def test_web_presets_are_valid_sources():
    for name in WEB_PRESETS:
        assert name in PRESETS
        src = source_config(name="s", preset=name)
        assert src.kind == "listing" and src.raw_url_template and "{id}" in src.raw_url_template
        assert src.link_css or src.link_xpath
