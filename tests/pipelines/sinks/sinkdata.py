"""Findings for sink tests, built from leaksentry.synth's fictional patients.

Matches hold masked forms only, as the matcher produces them. ``planted``
returns the patients' identifiers in canonical and written forms, for the
no-plaintext checks: stranger-controlled fields (URL, file name, snippets,
locations, errors) carry some of them unmasked on purpose, to prove the
sinks mask what the matcher could not.
"""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta

from leaksentry.redaction import mask
from leaksentry.synth import Patient, patients, written_hkid
from pipelines.model import Finding, Match, ScanResult, Skipped

SEVERITY_BY_COUNT = [(100, "critical"), (20, "high"), (5, "medium"), (1, "low")]
BASE_TIME = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def severity_for(n: int) -> str:
    for threshold, sev in SEVERITY_BY_COUNT:
        if n >= threshold:
            return sev
    return "none"


def hit_finding(people: list[Patient], *, url: str, source: str = "pastebin",
                when: datetime = BASE_TIME, leak_in_text: bool = False,
                content_salt: str = "") -> Finding:
    """A hit over ``people``; with ``leak_in_text`` the file name and a snippet carry a
    plaintext HKID the way a careless upload would (the sinks must mask it)."""
    matches = []
    for i, p in enumerate(people):
        matches.append(Match(kind="hkid", masked=mask("hkid", p.hkid), record_ref=p.ref,
                             count=1, where=f"Sheet1!C{i + 2}",
                             digest=hashlib.sha256(b"k" + p.hkid.encode()).hexdigest()[:32]))
        matches.append(Match(kind="hn", masked=p.hn[:4] + "****" + p.hn[-1], record_ref=p.ref,
                             count=1, where=f"Sheet1!D{i + 2}"))
    n = len(people)
    snippets = [f"... {mask('hkid', p.hkid)} ..." for p in people[:3]]
    filename = "export.xlsx"
    skipped: list[Skipped] = []
    if leak_in_text and people:
        rng = random.Random(n)
        snippets.append(f"row for {written_hkid(people[0].hkid, rng)} continues")
        filename = f"{people[-1].hkid}.xlsx"
        skipped.append(Skipped(f"backup.zip/{people[0].hkid}.db", "corrupt",
                               f"backup.zip/{people[0].hkid}.db: table unreadable"))
    result = ScanResult(
        status="ok", severity=severity_for(n), risk_score=min(100, 10 * n),
        matched_records=n, record_refs=[p.ref for p in people],
        record_level_refs=[p.ref for p in people], matches=matches,
        unmatched_valid={"hkid": 2}, parts=1, snippets=snippets, skipped=skipped,
    )
    sha = hashlib.sha256(("|".join(p.ref for p in people) + url + content_salt).encode())
    return Finding(url=url, source=source, sha256=sha.hexdigest(), size=1000 + n,
                   fetched_at=when, result=result, filename=filename,
                   content_type="application/vnd.openxmlformats-officedocument"
                                ".spreadsheetml.sheet", item_id=url.rsplit("/", 1)[-1],
                   http_status=200)


def clean_finding(url: str, source: str = "pastebin", when: datetime = BASE_TIME,
                  status: str = "ok", error: str | None = None) -> Finding:
    result = ScanResult(status=status, error=error, parts=1)
    return Finding(url=url, source=source, sha256=hashlib.sha256(url.encode()).hexdigest(),
                   size=10, fetched_at=when, result=result, content_type="text/plain",
                   http_status=200)


def people(n: int, seed: int = 7) -> list[Patient]:
    return list(patients(n, seed=seed))


def planted_forms(ps: list[Patient]) -> list[str]:
    """Every form an identifier of ``ps`` could take, for substring searches."""
    out: set[str] = set()
    for p in ps:
        c = p.hkid
        body, check = c[:-1], c[-1]
        out |= {c, c.lower(), f"{body}({check})", f"{body} {check}", body, p.hn}
        out.add("".join(chr(ord(ch) + 0xFEE0) for ch in f"{body}({check})"))
    return sorted(out)


def a_month_of_findings(ps: list[Patient], sources: list[str], count: int) -> list[Finding]:
    """``count`` hits spread over sources and days, sizes 1..len(ps)."""
    out = []
    for i in range(count):
        k = 1 + (i * 37) % len(ps)
        out.append(hit_finding(ps[:k], url=f"https://{sources[i % len(sources)]}.example/p/{i}",
                               source=sources[i % len(sources)],
                               when=BASE_TIME - timedelta(days=i % 10, minutes=i)))
    return out


def utc_now() -> datetime:
    return datetime.now(UTC)
