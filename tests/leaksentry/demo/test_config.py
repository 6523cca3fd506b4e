"""The demo's leaksentry.toml is a valid config for the real loader, pointed at loopback."""

from __future__ import annotations

from leaksentry.config import load_config
from leaksentry.demo.config import WEBHOOK_CHANNEL, SiteUrls, write_config
from leaksentry.demo.scenario import SEVERITY_THRESHOLDS, build_scenario

URLS = SiteUrls(feed="http://127.0.0.1:1001", directory="http://127.0.0.1:1002",
                rendered="http://127.0.0.1:1003", watch="http://127.0.0.1:1004",
                webhook="http://127.0.0.1:1005/hooks/leaksentry")


def test_config_loads_and_points_at_the_scenario(tmp_path) -> None:
    sc = build_scenario(tmp_path, export_rows=20, register_extra=80)
    path = write_config(sc, URLS, webhook_secret="s3cret-\"quoted\"", es_url="http://127.0.0.1:9")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    s = load_config(path)
    assert s.state.dir == sc.state_dir
    assert s.matching.key == sc.key_path and s.matching.fingerprints == sc.fingerprints_path
    assert s.matching.severity.medium_records == SEVERITY_THRESHOLDS["medium"]
    assert s.matching.severity.critical_records == SEVERITY_THRESHOLDS["critical"]
    assert sc.passwords[0] in s.extract.passwords
    ch = s.alerts.channel(WEBHOOK_CHANNEL)
    assert ch.secret_url() == URLS.webhook and ch.signing_secret() == 's3cret-"quoted"'
    assert s.elasticsearch.url == "http://127.0.0.1:9"
    kinds = {src.name: src.kind for src in s.sources}
    assert kinds == {"pastes": "feed", "open-directory": "directory", "forum": "listing",
                     "watched-link": "watch"}
    assert all(src.allow_private for src in s.sources)
    forum = s.source("forum")
    assert forum.render and forum.url == "http://127.0.0.1:1003/index.html"
    assert s.source("watched-link").all_urls == [URLS.watch + sc.watch_path]
    assert s.source("pastes").raw_url_path == "scrape_url"  # the Pastebin preset applied


def test_no_elasticsearch_unless_asked(tmp_path) -> None:
    sc = build_scenario(tmp_path, export_rows=20, register_extra=80)
    s = load_config(write_config(sc, URLS, webhook_secret="x"))
    assert not s.elasticsearch.enabled
