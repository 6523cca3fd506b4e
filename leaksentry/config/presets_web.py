"""Listing presets: archive-style paste sites that show recent pastes as HTML.

Pure data (no Scrapy import): ``leaksentry.config.presets`` merges :data:`WEB_PRESETS`
into the presets the config validator applies, so ``preset =
"pastebin-archive"`` in a ``[[sources]]`` table fills in these fields and the
file's own fields win. Selectors follow each site's public "recent" page and
the archive/raw URL patterns that pystemon's site table documents.
"""

from __future__ import annotations

from typing import Any

#: https://pastebin.com/archive: a ``table.maintable`` whose first cell links ``/<8 chars>``;
#: the sidebar repeats some links (not matched by this selector). Body at ``/raw/{id}``.
#: Sometimes behind a Cloudflare challenge (REFERENCE.md): then the run records an error.
PASTEBIN_ARCHIVE: dict[str, Any] = {
    "kind": "listing",
    "url": "https://pastebin.com/archive",
    "link_css": "table.maintable tr td:first-child a",
    "id_regex": r"^/([A-Za-z0-9]{8})$",
    "raw_url_template": "https://pastebin.com/raw/{id}",
    "delay": 1.0,
    "concurrency": 1,
}

#: https://slexy.org/recent: rows end with ``<a href="/view/<id>">View paste</a>``;
#: body at ``/raw/<id>``.
SLEXY: dict[str, Any] = {
    "kind": "listing",
    "url": "https://slexy.org/recent",
    "link_css": "a[href^='/view/']",
    "id_regex": r"/view/([A-Za-z0-9]+)$",
    "raw_url_template": "https://slexy.org/raw/{id}",
    "delay": 1.0,
    "concurrency": 1,
}

#: http://codepad.org/recent: "view" links to ``http://codepad.org/<id>``; body at
#: ``/<id>/raw.txt``.
CODEPAD: dict[str, Any] = {
    "kind": "listing",
    "url": "http://codepad.org/recent",
    "link_xpath": "//a[normalize-space(text())='view']",
    "id_regex": r"codepad\.org/([A-Za-z0-9]+)$",
    "raw_url_template": "http://codepad.org/{id}/raw.txt",
    "delay": 1.0,
    "concurrency": 1,
}

WEB_PRESETS: dict[str, dict[str, Any]] = {
    "pastebin-archive": PASTEBIN_ARCHIVE,
    "slexy": SLEXY,
    "codepad": CODEPAD,
}
