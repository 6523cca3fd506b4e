"""The small typed values passed between stages.

Each stage knows only these: the extractor turns a :class:`Document`'s bytes
into :class:`TextPart` values, the matcher turns parts into a
:class:`ScanResult`, and the sinks and alerts consume a :class:`Finding`
(the document's :class:`DocumentMeta` + scan result). None of them carries a plaintext
identifier: matches hold masked forms, keyed digests and register references.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Literal, TypeGuard, get_args

#: Cells of one table row are joined with this separator in ``TextPart.text``;
#: extractors replace it inside cell values, so the matcher can tell columns apart.
CELL_SEP = "\x1f"

#: what became of reading a document (or a member, a page): only "ok" was read in full
Status = Literal["ok", "encrypted", "too_large", "unsupported", "corrupt", "timeout", "error"]
STATUSES: tuple[Status, ...] = get_args(Status)

#: how bad a finding is, in rising order
Severity = Literal["none", "low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)


def _same(text: str) -> str:
    return text


def severity_rank(severity: Severity) -> int:
    return SEVERITIES.index(severity)


def is_severity(value: object) -> TypeGuard[Severity]:
    """``value`` is one of :data:`SEVERITIES` (for text read back from a store or payload)."""
    return value in SEVERITIES


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentMeta:
    """Where a document came from and what it said about itself: shared by the
    :class:`Document` (with its bytes) and the :class:`Finding` (with its scan result)."""

    url: str  # URL for crawled items, the path for `scan`
    source: str  # source name from config; "scan" for the CLI
    fetched_at: datetime = field(default_factory=utcnow)
    content_type: str | None = None
    filename: str | None = None
    item_id: str | None = None
    http_status: int | None = None

    def meta(self) -> dict[str, Any]:
        """This metadata as keyword arguments (for another :class:`DocumentMeta` kind)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(DocumentMeta)}


# no slots: the sha256 is cached in the instance's __dict__
@dataclass(frozen=True, kw_only=True)
class Document(DocumentMeta):
    """One fetched (or locally read) upload, before extraction."""

    content: bytes

    @cached_property
    def sha256(self) -> str:
        """Hex SHA-256 of the content, computed on first use (a document can be large)."""
        return hashlib.sha256(self.content).hexdigest()

    @property
    def size(self) -> int:
        return len(self.content)


@dataclass(frozen=True, slots=True)
class TextPart:
    """Text with where it came from.

    ``location`` names the container ("Sheet1", "page 3",
    "archive.zip/export/patients.csv", "$.patients[3].hkid"). When ``row`` is
    set the part is one table row: a record. Its cells are joined with
    :data:`CELL_SEP`, so a match can be placed at "Sheet1!C2". ``text`` may also
    be UTF-8 bytes (plain text as it arrived), which the matcher scans as they are.
    """

    text: str | bytes
    location: str = ""
    row: int | None = None
    #: a table row's column labels (the header row, SQL column names), in cell order;
    #: one tuple shared by every row of the table. Used to say which fields a hit
    #: exposed; never stored as document text.
    header: tuple[str, ...] | None = None

    @property
    def string(self) -> str:
        """``text`` as str (UTF-8 bytes decoded, invalid sequences replaced)."""
        t = self.text
        return t if isinstance(t, str) else t.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class Match:
    """One distinct identifier found, in masked form only."""

    kind: str
    masked: str  # e.g. "A12****(3)"
    record_ref: str | None  # register reference, None when not in the register
    count: int
    where: str  # first location, e.g. "Sheet1!C2", "page 3", "line 14"
    digest: str = ""  # hex keyed digest (for related.hash); never the identifier

    def to_json(self, redact: Callable[[str], str | None] | None = None) -> dict[str, Any]:
        """As JSON; ``redact`` (the redaction policy) is applied to the strings made of
        document text (mask and location)."""
        r = redact or _same
        return {
            "kind": self.kind,
            "masked": r(self.masked),
            "record_ref": self.record_ref,
            "count": self.count,
            "where": r(self.where),
        }


@dataclass(frozen=True, slots=True)
class Skipped:
    """Content of a document that could not be read (never counted as clean).

    ``where`` names the member or page ("backup.zip/his.db", "page 3"), already made
    safe by the redaction policy; ``status`` is one of :data:`STATUSES` other than ok.
    """

    where: str
    status: Status
    error: str

    def to_json(self, redact: Callable[[str], str | None] | None = None) -> dict[str, Any]:
        r = redact or _same
        return {"where": r(self.where), "status": self.status, "error": r(self.error)}


@dataclass(slots=True)
class ScanResult:
    """What the matcher concluded about one document."""

    status: Status = "ok"
    error: str | None = None
    severity: Severity = "none"
    risk_score: int = 0
    matched_records: int = 0
    record_refs: list[str] = field(default_factory=list)
    # record refs with identifiers of the same record in one row / window
    record_level_refs: list[str] = field(default_factory=list)
    matches: list[Match] = field(default_factory=list)
    unmatched_valid: dict[str, int] = field(default_factory=dict)
    parts: int = 0
    # short context around matches, every identifier masked
    snippets: list[str] = field(default_factory=list)
    # names inside encrypted containers, passwords tried, detected type ...
    details: dict[str, Any] = field(default_factory=dict)
    # members, pages or images whose content could not be read (no silent misses)
    skipped: list[Skipped] = field(default_factory=list)
    # pages/images that went through OCR; None when OCR did not run
    ocr_pages: int | None = None
    # what the document exposed: table labels / text labels next to identifiers,
    # and their categories (name, gender, dob, address, phone, diagnosis/procedure,
    # identifier, other); never the document's own values
    exposed_fields: list[str] = field(default_factory=list)
    exposed_categories: list[str] = field(default_factory=list)

    @property
    def hit(self) -> bool:
        return self.matched_records > 0 or self.severity != "none"

    @property
    def partial(self) -> bool:
        """Matches were found but some content could not be read."""
        return bool(self.skipped) and self.hit


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding(DocumentMeta):
    """A scanned document: metadata plus its scan result. Sinks and alerts take this."""

    #: None when the content was not read: a local input over the size limit (by its
    #: stat size), or one that is not a regular file (``scan`` of a FIFO, a device)
    sha256: str | None
    size: int
    result: ScanResult

    @classmethod
    def of(cls, doc: Document, result: ScanResult) -> Finding:
        return cls(**doc.meta(), sha256=doc.sha256, size=doc.size, result=result)

    @property
    def hit_sha256(self) -> str:
        """The sha256 of a hit's document: a hit's content was read, so it has one."""
        if self.sha256 is None:
            raise ValueError("a finding whose content was not read is never a hit")
        return self.sha256

    def scan_json(self) -> dict[str, Any]:
        """The `scan --json` line (DESIGN.md), field order as documented; every
        stranger-controlled string through the redaction policy."""
        # imported here: `leaksentry --help` loads this module but not the policy
        # (start-up, tests/leaksentry/cli/test_startup.py)
        from leaksentry.redaction import redact

        r = self.result
        return {
            "path": redact(self.url),
            "sha256": self.sha256,
            "status": r.status,
            "error": redact(r.error),
            "severity": r.severity,
            "matched_records": r.matched_records,
            "record_refs": list(r.record_refs),
            "matches": [m.to_json(redact) for m in r.matches],
            "unmatched_valid": dict(r.unmatched_valid),
            "parts": r.parts,
            "skipped": [s.to_json(redact) for s in r.skipped],
            "partial": r.partial,
            "exposed_fields": list(r.exposed_fields),
            "exposed_categories": list(r.exposed_categories),
            **({"ocr": {"pages": r.ocr_pages}} if r.ocr_pages is not None else {}),
        }


@dataclass(frozen=True, slots=True)
class StoredHit:
    """What the local store made of a hit finding (the alert planner keys on this)."""

    hit_id: int
    new: bool  # False when the same (sha256, url) was stored before: a re-sighting
    first_seen: datetime
    # identifies the same set of matched records across uploads (dedupe of re-uploads)
    records_key: str = ""
    # the encrypted copy in the evidence vault, when one was kept
    evidence: EvidenceInfo | None = None


@dataclass(frozen=True, slots=True)
class EvidenceInfo:
    """What a hit says about its encrypted copy in the evidence vault: the sha256 and
    size of the plaintext document, or why no copy was kept (``stored`` False)."""

    stored: bool
    sha256: str
    size: int
    error: str | None = None  # one line, e.g. "larger than max_bytes"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"stored": self.stored, "sha256": self.sha256, "size": self.size}
        if self.error:
            out["error"] = self.error
        return out


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One crawl of one source, as recorded in the state store."""

    source: str
    started_at: datetime
    finished_at: datetime
    outcome: str  # "ok", "error", "timeout", "killed"
    discovered: int = 0
    fetched: int = 0
    new: int = 0
    hits: int = 0
    errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)  # HTTP status -> count
    error: str | None = None  # one line, no identifiers

    @property
    def duration(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


def summary_to_json(s: RunSummary) -> str:
    """A run as one JSON line (shards and cluster parts report it; a run the store could
    not take waits in a journal as it)."""
    return json.dumps({"source": s.source, "started_at": s.started_at.isoformat(),
                       "finished_at": s.finished_at.isoformat(), "outcome": s.outcome,
                       "discovered": s.discovered, "fetched": s.fetched, "new": s.new,
                       "hits": s.hits, "errors": s.errors, "statuses": s.statuses,
                       "error": s.error})


def summary_from_json(text: str) -> RunSummary:
    d = json.loads(text)
    d["started_at"] = datetime.fromisoformat(d["started_at"])
    d["finished_at"] = datetime.fromisoformat(d["finished_at"])
    return RunSummary(**d)
