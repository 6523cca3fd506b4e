"""``telegram`` sources against servers/telegram_preview.py, a simulator of Telegram's public
channel preview (t.me/s/<channel>) following the markup in REFERENCE.md ("Telegram public
channels"): ``div.tgme_widget_message[data-post]``, ``.tgme_widget_message_text``,
``time[datetime]``, ``a.tme_messages_more[data-before]``. Crawls run as subprocesses.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from parsel import Selector
from servers.planted import forms, write_planted
from servers.telegram_preview import TelegramPreview

from crawler.spiders.telegram import message_text, older_page, parse_messages
from leaksentry.synth import patients, written_hkid

HERE = Path(__file__).parent


@pytest.fixture
def tg():
    srv = TelegramPreview(page_size=3).start()
    yield srv
    srv.stop()


def _setup(tg: TelegramPreview, ws) -> tuple[list, dict[str, str]]:
    people = list(patients(6, seed=77))
    rng = random.Random(3)
    tg.add_channel("leakchan", "Leak Channel")
    tg.post("leakchan", "hello, new dumps every day")
    tg.post("leakchan", f"sample: {people[0].name} {written_hkid(people[0].hkid, rng)}")
    tg.post("leakchan", None)  # a photo without caption
    tg.post("leakchan", f"{people[1].name} {people[1].hkid}\nsurgery list tomorrow")
    tg.post("leakchan", "full export here http://localhost:{port}/file/export.csv\n"
            "mirror (one download only) http://127.0.0.1:{port}/once/dump.csv\n"
            "discussion https://example.invalid/forum".replace("{port}", str(tg.port)))
    tg.post("leakchan", "more soon")
    tg.post("leakchan", f"last one {people[2].hkid}")
    export = "name,hkid\n" + "".join(f"{p.name},{p.hkid}\n" for p in people[3:6])
    tg.files["export.csv"] = export.encode()
    tg.once_files["dump.csv"] = b"would be destroyed by the first download"
    planted = ws.root / "planted.json"
    write_planted(planted, people)
    env = {"settings": {"LEAKSENTRY_PROCESSOR": "servers.planted.PlantedRefsProcessor",
                        "LEAKSENTRY_PLANTED": str(planted)},
           "env": {"PYTHONPATH": str(HERE)}}
    ws.write([{"name": "tg", "kind": "telegram", "url": tg.url, "channel": "leakchan",
               "pages": 5, "follow_links": True, "allow_private": True}],
             crawler={"file_hosts": ["localhost", "127.0.0.1"],
                      "never_fetch_hosts": ["127.0.0.1"]})
    return people, env


def test_channel_messages_and_file_host_links(tg: TelegramPreview, crawl_ws) -> None:
    ws = crawl_ws
    people, env = _setup(tg, ws)
    export_id = f"link:http://localhost:{tg.port}/file/export.csv"
    once_id = f"link:http://127.0.0.1:{tg.port}/once/dump.csv"

    first = ws.crawl("tg", **env)
    assert first.run is not None, first.output[-2000:]
    assert first.run["outcome"] == "ok", first.output[-2000:]
    docs = {d["item_id"]: d for d in ws.docs()}
    # 7 messages over 3 pages (3 per page); the photo has no text
    assert tg.hits["/s/leakchan"] == 3
    assert sorted(docs) == sorted([f"leakchan/{i}" for i in (1, 2, 4, 5, 6, 7)] + [export_id])
    assert docs["leakchan/2"]["refs"] == ["1"] and docs["leakchan/4"]["refs"] == ["2"]
    assert docs["leakchan/7"]["refs"] == ["3"]
    assert docs["leakchan/2"]["url"] == f"http://127.0.0.1:{tg.port}/leakchan/2"
    # the file-host link was fetched as a document, once
    assert docs[export_id]["refs"] == ["4", "5", "6"]
    assert tg.hits["/file/export.csv"] == 1
    # the destroy-on-download host was never contacted; the link is recorded
    assert tg.hits["/once/dump.csv"] == 0 and "dump.csv" in tg.once_files
    seen = ws.seen("tg")
    assert seen[once_id]["status"] == "gone"
    assert "deletes files on download" in seen[once_id]["note"]
    assert first.run["statuses"]["link_not_fetched"] == 1
    assert not any("example.invalid" in k for k in seen)
    stored = ws.stored_text()
    for form in forms(people):
        assert form not in first.output and form not in stored

    # second crawl: the newest page holds nothing new, so older pages are not read
    second = ws.crawl("tg", **env)
    assert second.run["outcome"] == "ok"
    assert second.run["fetched"] == 0 and second.run["new"] == 0
    assert tg.hits["/s/leakchan"] == 4 and tg.hits["/file/export.csv"] == 1

    # an edited message is processed again; a new one too
    tg.edit("leakchan", 6, f"more soon: {people[5].hkid}")
    tg.post("leakchan", "that's all")
    third = ws.crawl("tg", **env)
    assert third.run["new"] == 2, third.output[-2000:]
    later = {d["item_id"]: d for d in ws.docs()[7:]}
    assert sorted(later) == ["leakchan/6", "leakchan/8"]
    assert later["leakchan/6"]["refs"] == ["6"]


def test_requeued_message_is_read_from_its_embed_page(tg: TelegramPreview, crawl_ws) -> None:
    ws = crawl_ws
    _, env = _setup(tg, ws)
    assert ws.crawl("tg", **env).run["outcome"] == "ok"
    # as if the pipeline had failed on message 2 in an earlier run: re-queued, due now
    ws.execute("UPDATE seen_items SET status='retry', sha256=NULL, retry_at=NULL"
               " WHERE source='tg' AND item_id='leakchan/2'")
    res = ws.crawl("tg", **env)
    assert res.run["outcome"] == "ok", res.output[-2000:]
    assert tg.hits["/leakchan/2"] == 1
    assert ws.docs()[-1]["item_id"] == "leakchan/2" and ws.docs()[-1]["refs"] == ["1"]
    assert ws.seen("tg")["leakchan/2"]["status"] == "done"


def test_channel_without_public_preview_is_a_source_error(tg: TelegramPreview,
                                                          crawl_ws) -> None:
    crawl_ws.write([{"name": "tg", "kind": "telegram", "url": tg.url, "channel": "private_one",
                     "allow_private": True}])
    res = crawl_ws.crawl("tg")
    assert res.run["outcome"] == "error", res.output[-2000:]
    assert "no public preview" in res.run["error"]


# -- parsing -----------------------------------------------------------------------------

def test_parse_messages_reads_text_time_permalink_and_older_link(tg: TelegramPreview) -> None:
    import urllib.request

    tg.add_channel("c")
    for i in range(5):
        tg.post("c", f"line one {i}\nline two https://gofile.io/d/abc{i}")
    page = urllib.request.urlopen(f"{tg.url}/s/c").read().decode()
    sel = Selector(text=page)
    msgs = parse_messages(sel)
    assert [m.post for m in msgs] == ["c/3", "c/4", "c/5"]
    assert msgs[0].text == "line one 2\nline two gofile.io/d/abc2"  # shown text is shortened
    assert 'href="https://gofile.io/d/abc2"' in msgs[0].html
    assert msgs[0].datetime and msgs[0].datetime.startswith("2026-11-01T00:02")
    assert msgs[0].permalink == f"http://127.0.0.1:{tg.port}/c/3"
    assert older_page(sel) == "3"


def test_reply_quote_is_not_taken_as_the_message_text() -> None:
    html = """<div class="tgme_widget_message" data-post="c/9">
      <div class="tgme_widget_message_bubble">
      <a class="tgme_widget_message_reply" href="https://t.me/c/1">
        <div class="tgme_widget_message_text js-message_reply_text">quoted old text</div></a>
      <div class="tgme_widget_message_text js-message_text">own <b>bold</b> text<br/>2nd</div>
      <span class="tgme_widget_message_meta"><a class="tgme_widget_message_date"
        href="https://t.me/c/9"><time datetime="2026-01-01T00:00:00+00:00">0</time></a></span>
      </div></div>"""
    (m,) = parse_messages(Selector(text=html))
    assert m.text == "own bold text\n2nd"
    assert message_text("") == ""
    assert older_page(Selector(text="<a class='tme_messages_more' data-before='x'></a>")) is None
