"""Link expansion (crawler/links.py): finding file-host links in pastes and messages,
deciding fetch / record / ignore, direct-download rewrites; and a listing crawl whose
pastes link to a file host (a loopback server playing one) and to a destroy-on-download
host that must never be contacted."""

from __future__ import annotations

from crawler.links import (
    DEFAULT_FILE_HOSTS,
    DEFAULT_NEVER_FETCH_HOSTS,
    decide,
    direct_url,
    expand,
    extract_links,
    match_host,
)


def test_extract_links_from_text_strips_trailing_punctuation():
    text = ("get it (https://gofile.io/d/AbC123), or https://pixeldrain.com/u/x9. "
            "Also <https://files.catbox.moe/a1b2.zip>; and 'http://x.test/p?q=1&r=2'! "
            "https://en.wikipedia.org/wiki/Foo_(bar) https://gofile.io/d/AbC123")
    assert extract_links(text) == [
        "https://gofile.io/d/AbC123", "https://pixeldrain.com/u/x9",
        "https://files.catbox.moe/a1b2.zip", "http://x.test/p?q=1&r=2",
        "https://en.wikipedia.org/wiki/Foo_(bar)",
    ]


def test_extract_links_from_html_reads_hrefs_behind_shortened_text():
    html = ('<div>see <a href="https://gofile.io/d/LongIdentifier123">gofile.io/d/Long…</a>'
            '<br/>and <a href="/relative/x">rel</a> <a href="mailto:a@b">m</a></div>')
    links = extract_links(html, html=True, base_url="https://t.me/s/chan")
    assert links == ["https://gofile.io/d/LongIdentifier123", "https://t.me/relative/x"]


def test_match_host_is_exact_or_subdomain_only():
    assert match_host("files.catbox.moe", ["catbox.moe"]) == "catbox.moe"
    assert match_host("catbox.moe", ["catbox.moe"]) == "catbox.moe"
    assert match_host("evilcatbox.moe", ["catbox.moe"]) is None
    assert match_host("catbox.moe.evil.test", ["catbox.moe"]) is None
    assert match_host("FILE.IO.", ["file.io"]) == "file.io"


def test_destroy_on_download_hosts_are_recorded_never_fetched():
    d = decide("https://file.io/AbCdEf")
    assert d.action == "record" and d.fetch_url is None and "deletes" in d.reason
    # even when someone lists file.io among the file hosts
    d = decide("https://www.file.io/x", file_hosts=["file.io"], never_fetch_hosts=["file.io"])
    assert d.action == "record"
    assert "file.io" in DEFAULT_NEVER_FETCH_HOSTS


def test_fragment_key_hosts_are_recorded_and_unknown_hosts_ignored():
    assert decide("https://mega.nz/file/abc#key").action == "record"
    assert decide("https://example.org/x.zip").action == "ignore"
    assert decide("ftp://gofile.io/x").action == "ignore"
    fetch = decide("https://gofile.io/d/abc")
    assert fetch.action == "fetch" and fetch.host == "gofile.io"
    assert "gofile.io" in DEFAULT_FILE_HOSTS


def test_direct_download_rewrites():
    assert direct_url("https://pixeldrain.com/u/AbC12") == "https://pixeldrain.com/api/file/AbC12"
    assert direct_url("https://www.dropbox.com/s/x/leak.xlsx?dl=0") == \
        "https://www.dropbox.com/s/x/leak.xlsx?dl=1"
    assert direct_url("https://drive.google.com/file/d/1AbC_d-E/view?usp=sharing") == \
        "https://drive.google.com/uc?export=download&id=1AbC_d-E"
    assert direct_url("https://drive.google.com/open?id=XyZ") == \
        "https://drive.google.com/uc?export=download&id=XyZ"
    assert direct_url("https://files.catbox.moe/a.zip#frag") == "https://files.catbox.moe/a.zip"


def test_expand_yields_each_target_once_and_skips_ignored():
    text = ("https://pixeldrain.com/u/A1 https://pixeldrain.com/api/file/A1 "
            "https://file.io/z https://file.io/z https://example.org/")
    got = [(d.action, d.fetch_url or d.url) for d in expand(text)]
    assert got == [("fetch", "https://pixeldrain.com/api/file/A1"),
                   ("record", "https://file.io/z")]


def test_listing_follows_file_host_links_in_pastes(crawl_ws, loopback):
    from servers.archive_site import ArchiveSite
    from servers.loopback import QuietHandler

    class FileHost(QuietHandler):
        def do_GET(self) -> None:
            self.server.hits.append(self.path)  # type: ignore[attr-defined]
            self.send_body(200, b"name,ward\nx,y\n", "text/csv")

    host = loopback(FileHost, hits=[])
    wiper = loopback(FileHost, hits=[])
    site = ArchiveSite({"Paste001": ("t", f"dump at http://localhost:{host.port}/d/f.csv and "
                                          f"http://127.0.0.1:{wiper.port}/gone.csv\n"),
                        "Paste002": ("t", f"same http://localhost:{host.port}/d/f.csv\n")})
    site.start()
    try:
        crawl_ws.write([{"name": "pb", "preset": "pastebin-archive",
                         "url": f"{site.url}/archive",
                         "raw_url_template": f"{site.url}/raw/{{id}}",
                         "allow_private": True, "follow_links": True, "delay": 0}],
                       crawler={"file_hosts": ["localhost"],
                                "never_fetch_hosts": ["127.0.0.1"]})
        res = crawl_ws.crawl("pb")
        assert res.run["outcome"] == "ok", res.output[-2000:]
        ids = sorted(d["item_id"] for d in crawl_ws.docs())
        assert ids == ["Paste001", "Paste002", f"link:http://localhost:{host.port}/d/f.csv"]
        fetched = host.httpd.hits  # type: ignore[attr-defined]
        assert [h for h in fetched if h != "/robots.txt"] == ["/d/f.csv"]
        assert wiper.httpd.hits == []  # not even its robots.txt  # type: ignore[attr-defined]
        again = crawl_ws.crawl("pb")
        assert again.run["fetched"] == 0
        assert [h for h in fetched if h != "/robots.txt"] == ["/d/f.csv"]
    finally:
        site.stop()
