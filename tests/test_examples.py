"""The example configuration shipped in examples/ stays valid."""

from __future__ import annotations

from pathlib import Path

from leaksentry.config import load_config

EXAMPLE = Path(__file__).parent.parent / "examples" / "leaksentry.toml"


def test_example_config_is_valid_and_covers_every_source_kind():
    s = load_config(EXAMPLE)
    assert {src.kind for src in s.sources} == {
        "feed", "listing", "directory", "bucket", "watch", "telegram"}
    assert s.elasticsearch.enabled and s.kibana.url
    assert {c.type for c in s.alerts.channels} == {"email", "webhook", "syslog"}
    assert s.source("pastebin").url.startswith("https://scrape.pastebin.com/")
