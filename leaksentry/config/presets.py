"""Presets: the fields of known sites, merged under a source's own fields.

Pure data (no Scrapy import) so the config validator can read it. The
web presets (archive pages, listing sites) live in ``leaksentry.config.presets_web``
as ``WEB_PRESETS`` and are merged here.
"""

from __future__ import annotations

from typing import Any

from leaksentry.config.presets_web import WEB_PRESETS

#: Pastebin scraping API (PRO account + whitelisted IP):
#: https://pastebin.com/doc_scraping_api — api_scraping.php lists, api_scrape_item.php?i=KEY
#: returns the body; errors come back as plain text with status 200.
PASTEBIN: dict[str, Any] = {
    "kind": "feed",
    "url": "https://scrape.pastebin.com/api_scraping.php?limit=250",
    "items_path": "",
    "id_path": "key",
    "url_path": "full_url",
    "raw_url_path": "scrape_url",
    "size_path": "size",
    "date_path": "date",
    "concurrency": 1,
    "delay": 1.0,  # "about one request per second"
    "obey_robots": False,
}

#: GitHub public gists: https://docs.github.com/en/rest/gists/gists#list-public-gists
#: Each file of a gist is one document (item id "GIST_ID/FILENAME"); ``updated_at``
#: changing means the gist was edited.
GITHUB_GISTS: dict[str, Any] = {
    "kind": "feed",
    "url": "https://api.github.com/gists/public?per_page=100",
    "items_path": "",
    "id_path": "id",
    "url_path": "html_url",
    "raw_url_path": "files.*.raw_url",
    "date_path": "created_at",
    "updated_path": "updated_at",
    "pagination": "link",
    "max_pages": 3,
    "token_env": "GITHUB_TOKEN",
    "token_format": "Bearer {token}",
    "headers": {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"},
    "concurrency": 2,
    "obey_robots": False,
}

PRESETS: dict[str, dict[str, Any]] = {
    "pastebin": PASTEBIN,
    "github-gists": GITHUB_GISTS,
}

PRESETS.update(WEB_PRESETS)
