"""SourceConfig/CrawlerConfig validation, presets, defaults and the per-source
Scrapy settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from crawler.runner import scrapy_settings
from leaksentry.config import ConfigError, Settings, load_config
from leaksentry.config.sources import SOURCE_KINDS, CrawlerConfig, source_config


def errors(**kw):
    with pytest.raises(ValidationError) as exc:
        source_config(**kw)
    # the union's tag (the kind) is left out, as the config's messages do
    return {".".join(str(p) for p in e["loc"] if p not in SOURCE_KINDS): e["msg"]
            for e in exc.value.errors()}


def test_kind_specific_fields_are_named() -> None:
    got = errors(name="f", kind="feed", url="https://x.example/api")
    assert got["items_path"].startswith('required for kind "feed"')
    assert got["id_path"] == 'required for kind "feed"'
    assert "raw_url_path" in got
    assert errors(name="l", kind="listing", url="https://x.example/")["link_css"]
    assert errors(name="w", kind="watch")["urls"]
    assert errors(name="t", kind="telegram")["channel"]
    assert errors(name="d", kind="directory")["url"]
    assert "either every or cron" in errors(name="w", kind="watch", url="https://x.example/",
                                            every="2m", cron="* * * * *")["cron"]
    assert "invalid cron" in errors(name="w", kind="watch", url="https://x.example/",
                                    cron="61 * * * *")["cron"]
    assert "render" in errors(name="w", kind="watch", url="https://x.example/", render=True)
    assert "SOCKS" in errors(name="w", kind="watch", url="https://x.example/",
                             proxy="socks5h://127.0.0.1:9050")["proxy"]
    assert "not an http(s) URL" in str(errors(name="w", kind="watch", url="file:///etc/passwd"))
    assert errors(name="bad name", kind="watch", url="https://x.example/")["name"]


def test_presets_fill_fields_and_explicit_fields_win() -> None:
    s = source_config(name="pb", preset="pastebin", every="2m")
    assert s.kind == "feed" and s.id_path == "key" and s.raw_url_path == "scrape_url"
    assert s.every == 120 and s.delay == 1.0
    s = source_config(name="pb", preset="pastebin", url="http://127.0.0.1:1/api", delay=0)
    assert s.url == "http://127.0.0.1:1/api" and s.delay == 0
    g = source_config(name="g", preset="github-gists")
    assert g.raw_url_path == "files.*.raw_url" and g.token_env == "GITHUB_TOKEN"
    with pytest.raises(ValidationError, match="unknown preset 'nope'"):
        source_config(name="x", preset="nope")


def test_effective_inherits_crawler_defaults_and_robots_by_kind() -> None:
    c = CrawlerConfig(concurrency=3, delay=0.5, max_download_size="1MB", user_agent="UA/1")
    feed = c.effective(source_config(name="pb", preset="pastebin"))
    assert feed.concurrency == 1 and feed.delay == 1.0  # the preset's own
    assert feed.obey_robots is False and feed.user_agent == "UA/1"
    d = c.effective(source_config(name="d", kind="directory", url="https://x.example/",
                                 concurrency=7))
    assert d.concurrency == 7 and d.delay == 0.5 and d.obey_robots is True
    assert int(d.max_download_size) == 1_000_000


def test_scrapy_settings_per_source() -> None:
    app = Settings(crawler=CrawlerConfig(max_redirects=3),
                   sources=[source_config(name="d", kind="directory", url="https://x.example/",
                                         download_timeout="20s", timeout="5m", retry_max=1,
                                         proxy="http://127.0.0.1:8118")])
    s = scrapy_settings(app.sources[0], app)
    assert s["DOWNLOAD_TIMEOUT"] == 20 and s["CLOSESPIDER_TIMEOUT"] == 300
    assert s["RETRY_TIMES"] == 1 and s["REDIRECT_MAX_TIMES"] == 3
    assert s["ROBOTSTXT_OBEY"] is True and s["LEAKSENTRY_ALLOW_PRIVATE"] is False
    assert s["DOWNLOAD_MAXSIZE"] == 50 * 1024 * 1024
    assert s["LEAKSENTRY_GUARD_TRUSTED_HOSTS"] == ["127.0.0.1"]


def test_file_errors_name_the_source(tmp_path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[[sources]]\nname = "ok"\npreset = "pastebin"\n'
                 '[[sources]]\nname = "pb2"\nkind = "feed"\nurl = "https://x.example/"\n'
                 'items_path = ""\nraw_url_path = "raw"\n')
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert f'{p}: sources[1] (pb2).id_path: required for kind "feed"' in str(exc.value)
    p.write_text('[[sources]]\nname = "w"\nkind = "watch"\nurl = "https://x.example/"\n'
                 'concurency = 3\n')
    with pytest.raises(ConfigError, match=r"sources\[0\] \(w\)\.concurency: unknown field"):
        load_config(p)
