"""The demo's leaksentry.toml: the same file format a user writes, pointed at loopback.

Written as TOML text (and read back through :func:`leaksentry.config.load_config`,
so a field the config models do not know fails here, loudly, not silently).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leaksentry.config.toml import table
from leaksentry.demo.scenario import SEVERITY_THRESHOLDS, Scenario

WEBHOOK_CHANNEL = "security-team"


@dataclass(frozen=True, slots=True)
class SiteUrls:
    feed: str
    directory: str
    rendered: str
    watch: str
    webhook: str


@dataclass(frozen=True, slots=True)
class DemoSource:
    """One demo source: its config table and what it stands for in the report."""

    name: str
    kind: str
    site: str  # scenario site it crawls
    title: str
    table: dict[str, Any]


def demo_sources(sc: Scenario, urls: SiteUrls) -> list[DemoSource]:
    common = {"allow_private": True, "every": "2m", "timeout": "120s", "delay": 0,
              "concurrency": 4, "retry_max": 1}
    return [
        DemoSource("pastes", "feed", "feed", "paste feed (Pastebin scraping API format)", {
            "preset": "pastebin", "url": f"{urls.feed}/api_scraping.php?limit=100",
            **common, "delay": 0}),
        DemoSource("open-directory", "directory", "directory", "open directory listing", {
            "url": f"{urls.directory}/", "max_depth": 3, **common}),
        DemoSource("forum", "listing", "rendered", "forum page written by JavaScript (Chromium)",
                   {"url": f"{urls.rendered}/index.html", "render": True,
                    "link_css": "#app a", "wait_selector": "#app a",
                    # rendered item pages wait for their content (else for network idle)
                    "item_wait_selector": "#app p",
                    "wait_timeout": "45s",  # Chromium on a busy machine
                    **common, "obey_robots": False}),
        DemoSource("watched-link", "watch", "watch", "watched file-host link", {
            "urls": [f"{urls.watch}{sc.watch_path}"], **common}),
    ]


def matching_table(sc: Scenario) -> dict[str, Any]:
    """The [matching] section: key, fingerprints, and severity thresholds fixed by the
    scenario (record-level boost off), so every planted item's severity is predictable."""
    t = SEVERITY_THRESHOLDS
    return {"key": str(sc.key_path), "fingerprints": str(sc.fingerprints_path),
            "severity": {"low_records": t["low"], "medium_records": t["medium"],
                         "high_records": t["high"], "critical_records": t["critical"],
                         "record_level_boost": False}}


def write_config(sc: Scenario, urls: SiteUrls, *, webhook_secret: str,
                 es_url: str | None = None, es_backend: str = "elasticsearch",
                 sources: list[DemoSource] | None = None,
                 evidence_recipients: list[str] | None = None) -> Path:
    """Write ``sc.config_path`` for this run and return it."""
    sources = sources if sources is not None else demo_sources(sc, urls)
    parts = [
        "# leaksentry demo configuration: every site below runs on 127.0.0.1\n"
        "# (allow_private = true lets the crawler reach loopback; never set it for\n"
        "# real internet sources).\n",
        table("[state]", {"dir": sc.state_dir}),
        table("[matching]", matching_table(sc)),
        "# the encrypted zip's password was posted in a separate paste; an analyst adds\n"
        "# such passwords here so extraction can open the archive\n" + table(
            "[extract]", {"passwords": [*sc.passwords, "infected"]}),
        table("[alerts]", {"min_severity": "low", "digest_severities": [],
                            "backoff_base": "1s", "max_attempts": 3}),
        table("[[alerts.channels]]", {"name": WEBHOOK_CHANNEL, "type": "webhook",
                                       "url": urls.webhook, "secret": webhook_secret}),
        table("[crawler]", {"max_download_size": "64MiB"}),
    ]
    if evidence_recipients:
        parts.append("# hit documents kept encrypted to the security team's PUBLIC key; its\n"
                     "# identity stays on the trusted side (trusted/soc-identity.txt here)\n"
                     + table("[evidence]", {"recipients": evidence_recipients}))
    if es_url:
        parts.append(table("[elasticsearch]", {"url": es_url, "backend": es_backend,
                                                "index_prefix": "leaksentry-demo"}))
    parts += [table("[[sources]]", {"name": s.name, "kind": s.kind, **s.table})
              for s in sources]
    sc.config_path.write_text("\n".join(parts), encoding="utf-8")
    sc.config_path.chmod(0o600)  # it holds the webhook secret
    return sc.config_path


__all__ = ["SEVERITY_THRESHOLDS", "WEBHOOK_CHANNEL", "DemoSource", "SiteUrls", "demo_sources",
           "write_config"]
