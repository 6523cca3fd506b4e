"""A test-only crawl processor: which planted identifiers reached each document.

The real scanner needs a key and a fingerprint file; crawler tests that only
ask "did the spider deliver the content that holds these identifiers?" use
this instead (``crawl -s LEAKSENTRY_PROCESSOR=servers.planted.PlantedRefsProcessor``
with ``tests/crawler`` on ``PYTHONPATH``). The planted identifiers are given
as SHA-256 digests of their canonical form (the test-only setting
``LEAKSENTRY_PLANTED``: a JSON file, digest -> register ref), so no plaintext
identifier is written; each document appends ``{url, item_id, sha256, size,
filename, refs}`` to the ``LEAKSENTRY_DOCLOG`` file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import unicodedata
from typing import Any

_HKID = re.compile(r"(?<![A-Z0-9])([A-Z]{1,2})\s?(\d{6})\s?\(?([0-9A])\)?(?![A-Z0-9])")


def digest(canonical: str) -> str:
    return hashlib.sha256(canonical.encode()).hexdigest()


def refs_in(text: str, planted: dict[str, str]) -> list[str]:
    text = unicodedata.normalize("NFKC", text).upper()
    found = {planted[d] for m in _HKID.finditer(text)
             if (d := digest("".join(m.groups()))) in planted}
    return sorted(found, key=lambda r: (len(r), r))


class PlantedRefsProcessor:
    def __init__(self, planted: str, doclog: str, store: Any) -> None:
        with open(planted, encoding="utf-8") as fh:
            self.planted: dict[str, str] = json.load(fh)
        self.path = doclog
        self.store = store
        self.lock = threading.Lock()

    @classmethod
    def from_crawler(cls, crawler: Any) -> PlantedRefsProcessor:
        from crawler.state import StateStore

        s = crawler.settings
        return cls(s["LEAKSENTRY_PLANTED"], s["LEAKSENTRY_DOCLOG"],
                   StateStore.of(crawler).store)

    def __call__(self, doc: Any, mark_done: Any = None) -> bool:
        refs = refs_in(doc.content.decode("utf-8", errors="replace"), self.planted)
        line = json.dumps({"url": doc.url, "item_id": doc.item_id, "sha256": doc.sha256,
                           "size": doc.size, "filename": doc.filename, "refs": refs})
        with self.lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
        if mark_done is not None:  # the pipeline's contract: mark the item processed
            mark_done(self.store.conn)
        return bool(refs)


def write_planted(path: str | os.PathLike[str], patients: list[Any]) -> None:
    """Write the digest -> ref map for ``leaksentry.synth`` patients."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({digest(p.hkid): p.ref for p in patients}, fh)


def forms(patients: list[Any]) -> list[str]:
    """Every plaintext form a leak check must look for: canonical and common written ones."""
    out = []
    for p in patients:
        body, check = p.hkid[:-1], p.hkid[-1]
        out += [p.hkid, f"{body}({check})", f"{body} {check}", p.hkid.lower()]
    return out
