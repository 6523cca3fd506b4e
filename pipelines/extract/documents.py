"""Documents: PDF (text per page), DOCX (paragraphs, table rows), PPTX (slides), RTF.

Each format's library is imported by its handler: pypdf (77 ms), python-docx (52 ms) and
python-pptx (155 ms) are loaded by the first file of their kind, not by every scan
(start-up, ``python -X importtime``).
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

from pipelines.extract.node import Node
from pipelines.extract.ocr import PdfPages
from pipelines.extract.state import Failed, State, reason
from pipelines.extract.text import TableHeader, decode, row_text
from pipelines.model import TextPart

_SPACES = re.compile(r" {4,}")
_ALNUM = re.compile(r"[^\W_]")
# a page with fewer non-space characters than this whose images cover most of it is OCR'd
_SHORT_TEXT = 400

# pypdf logs every repair it makes on a damaged file; the status says enough
logging.getLogger("pypdf").setLevel(logging.ERROR)


def pdf(data: bytes, node: Node, state: State) -> Iterator[TextPart]:
    """One part per page ("page 3"). pypdf's layout mode keeps a table row on one
    line (cells that share a baseline), which record-level matching needs. A page whose
    text layer has no letter or digit (a scan), or little text on an image covering most
    of the page (a scan with a fax header), is rendered and OCR'd (:mod:`.ocr`)."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

    password = None
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            opened = False
            for pw in ("", *state.candidate_passwords()):
                try:
                    if reader.decrypt(pw):
                        opened = True
                        password = pw
                        if pw:
                            state.details["passwords_worked"] = \
                                state.details.get("passwords_worked", 0) + 1
                        break
                except (DependencyError, NotImplementedError) as e:
                    raise Failed("encrypted", f"{node.label}: PDF encrypted with an "
                                              f"unsupported method: {reason(e)}") from None
            if not opened:
                raise Failed("encrypted", f"{node.label}: PDF is password-protected")
        pages = reader.pages
        count = len(pages)
    except Failed:
        raise
    except FileNotDecryptedError:
        raise Failed("encrypted", f"{node.label}: PDF is password-protected") from None
    except (PdfReadError, Exception) as e:
        raise Failed("corrupt", f"{node.label}: PDF unreadable: {reason(e)}") from None
    state.details.setdefault("pages", count)
    bad = 0
    scans = PdfPages(data, password, node, state)
    try:
        for i in range(count):
            state.tick()
            try:
                text = pages[i].extract_text(extraction_mode="layout") or ""
            except Exception:
                try:
                    text = pages[i].extract_text() or ""
                except Exception:  # RecursionError included: a hostile page, not the document
                    bad += 1
                    continue
            if not _ALNUM.search(text):
                text = scans.text(i) or ""
            elif len(text) < 50 * _SHORT_TEXT and len("".join(text.split())) < _SHORT_TEXT \
                    and scans.mostly_image(i):
                text = f"{text}\n{scans.text(i) or ''}"
            text = _SPACES.sub("   ", text)
            if text.strip():
                yield TextPart(text, node.at(f"page {i + 1}"))
    finally:
        scans.close()
    if bad:
        state.note("corrupt", f"{node.label}: {bad} of {count} PDF pages unreadable")


def docx(data: bytes, node: Node, state: State) -> Iterator[TextPart]:
    """Body paragraphs as one text part ("document", a line per paragraph), then each
    table row as a record ("table 2", row 5)."""
    import docx as python_docx

    try:
        doc = python_docx.Document(io.BytesIO(data))
    except Exception as e:
        raise Failed("corrupt", f"{node.label}: DOCX unreadable: {reason(e)}") from None
    paras = [p.text for p in doc.paragraphs]
    if any(t.strip() for t in paras):
        yield TextPart("\n".join(paras), node.at("document"))
    for t, table in enumerate(doc.tables, start=1):
        state.tick()
        head = TableHeader()
        for r, row in enumerate(table.rows, start=1):
            cells = [c.text for c in row.cells]
            if any(cells):
                yield TextPart(row_text(cells), node.at(f"table {t}"), r,
                               head.header if head.done else head.see(cells))
    for s, section in enumerate(doc.sections, start=1):
        extra = [p.text for part in (section.header, section.footer) for p in part.paragraphs]
        if any(x.strip() for x in extra):
            yield TextPart("\n".join(extra), node.at(f"section {s} header/footer"))


def pptx(data: bytes, node: Node, state: State) -> Iterator[TextPart]:
    """Each slide's text ("slide 2"), its tables' rows as records, and its notes."""
    from pptx import Presentation

    try:
        prs = Presentation(io.BytesIO(data))
    except Exception as e:
        raise Failed("corrupt", f"{node.label}: PPTX unreadable: {reason(e)}") from None
    for n, slide in enumerate(prs.slides, start=1):
        state.tick()
        lines: list[str] = []
        tables = 0
        for shape in slide.shapes:
            if getattr(shape, "has_table", False) and shape.has_table:
                tables += 1
                head = TableHeader()
                for r, row in enumerate(shape.table.rows, start=1):
                    cells = [c.text for c in row.cells]
                    if any(cells):
                        yield TextPart(row_text(cells), node.at(f"slide {n} table {tables}"), r,
                                       head.header if head.done else head.see(cells))
            elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
                lines.extend(p.text for p in shape.text_frame.paragraphs)
        if any(x.strip() for x in lines):
            yield TextPart("\n".join(lines), node.at(f"slide {n}"))
        if slide.has_notes_slide:
            notes = slide.notes_slide.notes_text_frame
            if notes is not None and notes.text.strip():
                yield TextPart(notes.text, node.at(f"slide {n} notes"))


def rtf(data: bytes, node: Node, state: State) -> Iterator[TextPart]:
    from striprtf.striprtf import rtf_to_text

    try:
        text = rtf_to_text(decode(data, state), errors="replace")
    except Exception as e:
        raise Failed("corrupt", f"{node.label}: RTF unreadable: {reason(e)}") from None
    state.tick()
    if text.strip():
        yield TextPart(text, node.location)
