"""Bytes in, text parts out, each part saying where it came from.

Contract: ``extract(data, name, config, passwords)`` returns an
:class:`Extraction`; iterate ``extraction.parts()`` once (a generator: rows
are produced as they are read, so a 500,000-row sheet is never a list),
after which ``status``, ``error`` and ``details`` are final. Extraction
never raises for bad input: it records a status (pipelines.model.STATUSES)
and a one-line error that names the file or member but never quotes content.

Locations: "" for a plain text document (the matcher says "line 14"), the
file name for a CSV ("patients.csv"), "Sheet1", "page 3", "table 1",
"slide 2", "$.patients[3]" (JSON: the object whose fields the part lists),
and member paths for containers: "archive.zip/export/patients.csv",
"message.eml/attachment.xlsx/Sheet1". A table row is one part with ``row``
set and its cells joined by CELL_SEP.

JSON parts group an object's scalar fields ("hkid: …" lines) so that a
record's identifiers share a part, as record-level matching needs. File and
member names go through the redaction policy ("A12****(3).csv").

Images (PNG, JPEG, TIFF, BMP, GIF, WebP) and PDF pages without a text layer are OCR'd
(:mod:`.ocr`); a multi-page image's parts are "page 2". Content that could not be read
(OCR switched off, a page past a limit, a member that failed) is listed with
:meth:`State.skip` (``Extraction.skipped``, then ``ScanResult.skipped``);
``details["ocr_pages"]`` becomes ``ScanResult.ocr_pages``.

Types are detected by magic bytes first, the name second (:mod:`.detect`).
Limits (input size, expanded bytes and ratio, depth, members, parts, time)
come from :class:`ExtractConfig`; the time limit here is cooperative, and
pipelines.process enforces it from outside as well.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from leaksentry.config.extract import ExtractConfig
from pipelines.extract import ocr
from pipelines.extract.detect import detect
from pipelines.extract.node import Node, safe_name
from pipelines.extract.state import Failed, State, Stop, reason
from pipelines.model import Skipped, Status, TextPart

__all__ = ["Extraction", "detect", "extract", "preload"]

Handler = Callable[[bytes, Node, State], Iterator[TextPart]]


#: the format modules, imported when one of their handlers first runs (or by preload)
_MODULES = ("archives", "databases", "documents", "embedded", "encoded", "ocr", "office",
            "sheets", "text")


class _Lazy:
    """A format module imported when one of its handlers first runs: a scan of a text
    file does not pay for the archive, office and PDF libraries (pyzipper alone is
    ~35 ms of a process's start)."""

    def __init__(self, name: str) -> None:
        self._name = f"{__name__}.{name}"

    def __getattr__(self, attr: str) -> Callable[..., Any]:
        """A stand-in for the module's function (handlers, and helpers taking more
        arguments)."""
        name = self._name

        def run(*args: Any, **kwargs: Any) -> Any:
            return getattr(import_module(name), attr)(*args, **kwargs)

        run.__qualname__ = f"{name}.{attr}"
        return run


def _later(make: Callable[[], Handler]) -> Handler:
    """A handler made on its first call (making it imports its module)."""
    made: list[Handler] = []

    def run(data: bytes, node: Node, state: State) -> Iterator[TextPart]:
        if not made:
            made.append(make())
        return made[0](data, node, state)

    return run


def _handlers() -> dict[str, Handler]:
    archives, databases, documents, embedded, encoded, office, sheets, text = map(
        _Lazy, ("archives", "databases", "documents", "embedded", "encoded", "office",
                "sheets", "text"))

    def sheet(kind: str) -> Handler:
        return lambda d, n, s: sheets.spreadsheet(d, n, s, kind)

    def with_pictures(read: Handler) -> Handler:
        """An OOXML/ODF reader followed by OCR of the pictures the document holds."""
        def both(d: bytes, n: Node, s: State) -> Iterator[TextPart]:
            yield from read(d, n, s)
            yield from embedded.pictures(d, n, s)
        return both

    def stream(kind: str) -> Handler:
        return lambda d, n, s: archives.compressed(d, n, s, kind)

    return {
        "text": text.plain_text,
        "csv": text.csv_rows,
        "tsv": lambda d, n, s: text.csv_rows(d, n, s, "tsv"),
        "html": text.html_text,
        "xml": text.xml_text,
        "json": text.json_text,
        "ndjson": text.ndjson_text,
        "eml": encoded.eml,
        "msg": encoded.outlook_msg,
        "xlsx": with_pictures(sheet("xlsx")), "xlsb": sheet("xlsb"),
        "ods": with_pictures(sheet("ods")),
        "xls": _later(lambda: office.legacy("xls", sheet("xls"))),
        "doc": _later(lambda: office.legacy("doc", office.doc)),
        "ppt": _later(lambda: office.legacy("ppt", office.ppt)),
        "ooxml_encrypted": office.encrypted_ooxml,
        "odt": with_pictures(lambda d, n, s: office.odf(d, n, s, "odt")),
        "odp": with_pictures(lambda d, n, s: office.odf(d, n, s, "odp")),
        "odg": with_pictures(lambda d, n, s: office.odf(d, n, s, "odg")),
        "pdf": documents.pdf,
        "docx": with_pictures(documents.docx),
        "pptx": with_pictures(documents.pptx),
        "rtf": documents.rtf,
        "zip": archives.zip_archive,
        "7z": archives.seven_zip,
        "tar": archives.tar_archive,
        "rar": archives.rar_archive,
        "gzip": stream("gzip"), "bzip2": stream("bzip2"), "xz": stream("xz"),
        "zstd": stream("zstd"),
        "sqlite": databases.sqlite,
        "access": databases.access,
        **dict.fromkeys(ocr.IMAGE_KINDS, ocr.image),
    }


_HANDLERS: dict[str, Handler] = {}


def handler_for(kind: str) -> Handler | None:
    if not _HANDLERS:
        _HANDLERS.update(_handlers())
    return _HANDLERS.get(kind)


def preload() -> None:
    """Import the common format libraries now, so forked workers do not each import them
    (extract-msg and rarfile, a third of a second together, load on first use)."""
    for name in _MODULES:
        import_module(f"{__name__}.{name}")
    import docx  # noqa: F401
    import msoffcrypto  # noqa: F401
    import olefile  # noqa: F401
    import pptx  # noqa: F401
    import py7zr  # noqa: F401
    import pypdf  # noqa: F401
    import striprtf.striprtf  # noqa: F401
    import zstandard  # noqa: F401
    from PIL import Image

    Image.preinit()  # the common image plugins (PNG, JPEG, GIF, BMP) for OCR
    try:
        import pypdfium2  # noqa: F401
        import tesserocr  # noqa: F401
    except ImportError:  # OCR then reports itself unavailable, per document
        pass


def _run(data: bytes, node: Node, state: State) -> Iterator[TextPart]:
    kind = detect(data, node.name)
    if node.depth == 0:
        state.details["type"] = kind
    else:
        types = state.details.setdefault("member_types", {})
        types[kind] = types.get(kind, 0) + 1
    handler = handler_for(kind)
    if handler is None:
        raise Failed("unsupported", f"{safe_name(node.label)}: unsupported type {kind}")
    yield from handler(data, node, state)


def walk_member(data: bytes, node: Node, state: State) -> Iterator[TextPart]:
    """Extract a nested member; its own failure is recorded and the parent goes on."""
    where = node.label
    if node.depth > state.config.max_depth:
        state.details["depth_limit_hit"] = state.details.get("depth_limit_hit", 0) + 1
        state.skip(where, "too_large", f"{safe_name(where)}: nested deeper than "
                                       f"{state.config.max_depth} levels, not opened", note=True)
        return
    try:
        yield from _run(data, node, state)
    except Failed as e:
        if e.status == "unsupported":
            skipped = state.details.setdefault("skipped_members", 0)
            state.details["skipped_members"] = skipped + 1
        state.skip(where, e.status, e.message, note=True)
    except (Stop, GeneratorExit):
        raise
    except RecursionError:
        state.skip(where, "corrupt", f"{safe_name(where)}: nested too deeply to read", note=True)
    except MemoryError:
        raise Stop("too_large", f"{safe_name(where)}: out of memory while reading") from None
    except Exception as e:
        state.skip(where, "corrupt", f"{safe_name(where)}: unreadable: {reason(e)}", note=True)


class _Dispatch:
    """Handed to every handler as ``state.dispatch``: nested content comes back here
    without the handlers importing this module (which imports them)."""

    walk = staticmethod(walk_member)
    run = staticmethod(_run)

    @staticmethod
    def handles(kind: str) -> bool:
        return handler_for(kind) is not None


@dataclass
class Extraction:
    data: bytes
    name: str
    config: ExtractConfig
    passwords: tuple[str, ...] = ()
    status: Status = "ok"
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    parts_count: int = 0
    until: float | None = None
    #: members, tables, pages whose content could not be read (final after parts())
    skipped: list[Skipped] = field(default_factory=list)
    start: int = 0
    first_line: int = 1

    def parts(self) -> Iterator[TextPart]:
        state = State(self.config, len(self.data), self.passwords, details=self.details,
                      until=self.until, skipped=self.skipped, start=self.start,
                      first_line=self.first_line, dispatch=_Dispatch())
        node = Node("", self.name)
        try:
            if len(self.data) > self.config.max_input_bytes:
                state.details["type"] = detect(self.data[:1 << 16], self.name)
                raise Stop("too_large", f"{safe_name(node.label)}: {len(self.data)} bytes "
                                        f"exceeds the input limit of "
                                        f"{self.config.max_input_bytes} bytes")
            if not self.data:
                state.details["type"] = "empty"
                return
            max_parts = self.config.max_parts
            deadline = state.deadline
            clock = time.monotonic
            for part in _run(self.data, node, state):
                state.parts += 1
                if state.parts > max_parts:
                    raise Stop("too_large", f"{safe_name(node.label)}: more than "
                                            f"{max_parts} text parts")
                if clock() > deadline:  # per part: the consumer's pace sets the time
                    state.tick()
                yield part
        except Failed as e:
            state.note(e.status, e.message)
        except Stop as e:
            state.details["limit"] = e.status
            label = safe_name(node.label)
            state.note(e.status, e.message if e.message.startswith(label)
                       else f"{label}: {e.message}")
        except RecursionError:
            state.note("corrupt", f"{safe_name(node.label)}: nested too deeply to read")
        except MemoryError:
            state.note("too_large", f"{safe_name(node.label)}: out of memory while reading")
        except Exception as e:  # a library bug on hostile input: recorded, never raised
            state.note("error", f"{safe_name(node.label)}: extraction failed: {reason(e)}")
        finally:
            self.status = state.status
            self.error = state.error
            self.parts_count = min(state.parts, self.config.max_parts)
            if state.expanded:
                self.details["expanded_bytes"] = state.expanded
            if state.members:
                self.details["members"] = state.members


def extract(data: bytes, name: str = "", config: ExtractConfig | None = None,
            passwords: Iterable[str] = (), *, until: float | None = None,
            start: int = 0, first_line: int = 1) -> Extraction:
    """``until`` (a time.monotonic() value) stops extraction earlier than the configured
    time limit, e.g. so that the matcher can finish what it was given. ``start``,
    ``first_line``: a plain UTF-8 text is read from byte ``start`` on, the start of its
    line ``first_line`` (a split scan: its parts are the whole text's from there on)."""
    return Extraction(bytes(data), name or "", config or ExtractConfig(), tuple(passwords),
                      until=until, start=start, first_line=first_line)
