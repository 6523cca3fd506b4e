"""What one extraction run keeps between formats: limits, the worst status, details.

Format handlers are generators of :class:`TextPart`. They call
:meth:`State.charge` for every decompressed/decoded byte and
:meth:`State.tick` now and then; limits raise :class:`Stop`, which ends the
whole run with a status. Problems confined to one member (a corrupt file in
a zip, an encrypted member) are recorded with :meth:`State.note` and the
run goes on with the next member; content that could not be read at all (a
member, a table, a page) is also listed with :meth:`State.skip`, so that a
document is never reported clean for what was never looked at.

A handler reaches nested content (a zip member, an attachment, a decrypted file) through
:meth:`State.walk` and :meth:`State.run`: the dispatcher in :mod:`pipelines.extract`
hands itself in as :attr:`State.dispatch`, so the handlers it imports never import it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from leaksentry.config.extract import ExtractConfig
from leaksentry.redaction import redact_error
from pipelines.extract.node import Node, safe_name
from pipelines.model import Skipped, Status, TextPart

#: when several members disagree, the document gets the most serious status
_RANK: dict[Status, int] = {"ok": 0, "unsupported": 1, "error": 2, "corrupt": 3, "encrypted": 4,
         "too_large": 5, "timeout": 6}


class Stop(Exception):
    """A document-wide limit was hit: stop extracting, keep what was produced."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Failed(Exception):
    """One container could not be read (corrupt, encrypted, unsupported)."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


#: skipped entries kept per document; the rest are only counted (details["skipped_more"])
MAX_SKIPPED = 100


def reason(exc: BaseException) -> str:
    """A library's reason for failing, in one line made safe by the redaction policy."""
    msg = redact_error(str(exc)) if str(exc) else ""
    name = type(exc).__name__
    return f"{name}: {msg}" if msg else name


class Dispatch(Protocol):
    """The dispatcher of :mod:`pipelines.extract`, as a handler sees it."""

    def walk(self, data: bytes, node: Node, state: State) -> Iterator[TextPart]:
        """A nested member: its own failure is recorded and the parent goes on."""
        ...

    def run(self, data: bytes, node: Node, state: State) -> Iterator[TextPart]:
        """Content extracted as what it is, its failure the caller's."""
        ...

    def handles(self, kind: str) -> bool:
        """Whether a handler reads ``kind``."""
        ...


@dataclass
class State:
    config: ExtractConfig
    input_bytes: int
    passwords: tuple[str, ...] = ()
    started: float = field(default_factory=time.monotonic)
    status: Status = "ok"
    error: str | None = None
    expanded: int = 0
    members: int = 0
    parts: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    #: content that could not be read (members, tables, pages), see :meth:`skip`
    skipped: list[Skipped] = field(default_factory=list)

    #: a caller's own deadline (time.monotonic), e.g. to leave time for matching
    until: float | None = None
    #: where a plain text is read from: byte ``start``, which is line ``first_line`` (the
    #: rest of a text whose first part is scanned apart, see pipelines.process)
    start: int = 0
    first_line: int = 1
    #: the dispatcher (set by pipelines.extract): nested content is read through it
    dispatch: Dispatch | None = None

    @property
    def deadline(self) -> float:
        own = self.started + self.config.time_limit
        return own if self.until is None else min(own, self.until)

    def note(self, status: Status, message: str) -> None:
        """Record a problem; the most serious one becomes the document's status."""
        problems = self.details.setdefault("problems", [])
        if len(problems) < 20:
            problems.append(f"{status}: {message}")
        if _RANK.get(status, 2) > _RANK.get(self.status, 0):
            self.status, self.error = status, message

    def skip(self, where: str, status: Status, error: str, *, note: bool = False) -> None:
        """Content at ``where`` ("backup.zip/his.db", "patients", "page 3") was not read:
        list it (masked, bounded), so the scan is never plain ok for it. The document's
        status is left as it is, unless ``note`` (a corrupt member, a failed table: the
        document's status says so, as it always has; an unsupported member never does).
        ``error`` must already be safe (names through node.safe_name, reasons through
        :func:`reason`)."""
        if len(self.skipped) < MAX_SKIPPED:
            self.skipped.append(Skipped(safe_name(where) or "document", status,
                                        error[:300]))
        else:
            self.details["skipped_more"] = self.details.get("skipped_more", 0) + 1
        if note and status != "unsupported":
            self.note(status, error)

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise Stop("timeout", f"extraction stopped at the time limit of "
                                  f"{self.config.time_limit:g} s per document (what was "
                                  f"read so far is scanned)")

    def charge(self, n: int, where: str) -> None:
        """Count ``n`` expanded bytes against the total and ratio limits."""
        self.expanded += n
        cfg = self.config
        if self.expanded > cfg.max_expanded_bytes:
            raise Stop("too_large", f"{where}: expanded content exceeds "
                                    f"{cfg.max_expanded_bytes} bytes (decompression bomb?)")
        if (self.expanded > cfg.ratio_floor_bytes
                and self.expanded > cfg.max_expansion_ratio * max(self.input_bytes, 1)):
            raise Stop("too_large", f"{where}: expansion ratio exceeds "
                                    f"{cfg.max_expansion_ratio:g} (decompression bomb?)")

    def member(self, where: str) -> None:
        self.members += 1
        if self.members > self.config.max_members:
            raise Stop("too_large", f"{where}: more than {self.config.max_members} "
                                    f"archive members")
        self.tick()

    def room(self) -> int:
        """Bytes that may still be expanded before a limit is hit (+1 to detect overflow)."""
        cfg = self.config
        by_total = cfg.max_expanded_bytes - self.expanded
        by_ratio = max(cfg.ratio_floor_bytes,
                       int(cfg.max_expansion_ratio * max(self.input_bytes, 1))) - self.expanded
        return max(0, min(by_total, by_ratio)) + 1

    def _dispatcher(self) -> Dispatch:
        if self.dispatch is None:
            raise Failed("unsupported", "nested content: no dispatcher to read it")
        return self.dispatch

    def walk(self, data: bytes, node: Node) -> Iterator[TextPart]:
        """Extract the nested member ``node``; its own failure is recorded and the
        parent goes on."""
        return self._dispatcher().walk(data, node, self)

    def run(self, data: bytes, node: Node) -> Iterator[TextPart]:
        """Extract ``data`` as what it is (a decrypted file); its failure is the
        caller's."""
        return self._dispatcher().run(data, node, self)

    def handles(self, kind: str) -> bool:
        """Whether ``kind`` (:func:`pipelines.extract.detect.detect`) can be read."""
        return self.dispatch is not None and self.dispatch.handles(kind)

    def candidate_passwords(self) -> list[str]:
        seen: dict[str, None] = {}
        for p in (*self.passwords, *self.config.passwords):
            seen.setdefault(p, None)
        return list(seen)
