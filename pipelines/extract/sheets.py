"""Spreadsheets (XLSX/XLSM/XLSB/XLS/ODS) through python-calamine.

Each sheet row is one record part at location "<sheet name>", row = the
spreadsheet's own 1-based row number, cells padded from column A so the
matcher can say "Sheet1!C2". Formulas give their cached values. Rows are
turned into Python values lazily (``iter_rows``); the sheet itself is held in
calamine's compact Rust cells. calamine holds a sheet as a dense range, so an XLSX
sheet whose extent is too large for that (one cell at XFD1048576), or that calamine
fails on, is read by the streaming reader (:mod:`.xlsx_stream`) instead; a sheet
neither reads is listed as skipped and the other sheets are still read.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Iterator
from typing import Any

from python_calamine import CalamineWorkbook

from pipelines.extract import office, xlsx_stream
from pipelines.extract.node import Node, safe_name
from pipelines.extract.state import Failed, State, Stop, reason
from pipelines.extract.text import TableHeader, row_text
from pipelines.model import TextPart


def _cell(v: Any) -> str:
    if v is None or v == "":
        return ""
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e16 else repr(v)
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, dt.datetime | dt.date | dt.time | dt.timedelta):
        return v.isoformat() if not isinstance(v, dt.timedelta) else str(v)
    return str(v)


def _failure(node: Node, kind: str, e: BaseException) -> Failed:
    text = str(e).lower()
    if "password" in text or "encrypt" in text:
        return Failed("encrypted", f"{node.label}: {kind} is password-protected")
    return Failed("corrupt", f"{node.label}: {kind} unreadable: {reason(e)}")


class _Ooxml:
    """The workbook's zip, opened for the streaming reader only when a sheet needs it."""

    def __init__(self, data: bytes, node: Node, state: State) -> None:
        self.zf = zipfile.ZipFile(io.BytesIO(data))
        self.paths = xlsx_stream.sheet_paths(self.zf)
        self.node, self.state = node, state
        self._strings: list[str] | None = None

    def fits(self, name: str) -> bool:
        path = self.paths.get(name)
        return path is None or xlsx_stream.fits_calamine(self.zf, path)

    def stream(self, name: str, loc: str) -> Iterator[TextPart]:
        if self._strings is None:
            self._strings = xlsx_stream._shared_strings(self.zf, self.state,
                                                        safe_name(self.node.label))
        streamed = self.state.details.get("streamed_sheets", 0) + 1
        self.state.details["streamed_sheets"] = streamed
        yield from xlsx_stream.stream_sheet(self.zf, self.paths[name], self._strings, loc,
                                            self.state)


def _ooxml(data: bytes, node: Node, state: State, kind: str) -> _Ooxml | None:
    if kind != "xlsx":
        return None
    try:
        return _Ooxml(data, node, state)
    except Exception:
        return None  # not a readable package: calamine reports what is wrong


def spreadsheet(data: bytes, node: Node, state: State, kind: str = "xlsx") -> Iterator[TextPart]:
    """Sheet by sheet: calamine (fast), or the streaming reader for an XLSX sheet calamine
    cannot take (a far-out cell, a sheet it fails on); a sheet neither can read is
    skipped, the rest of the workbook is still read."""
    try:
        wb = CalamineWorkbook.from_filelike(io.BytesIO(data))
        names = list(wb.sheet_names)
    except Exception as e:
        failure = _failure(node, kind, e)
        if kind == "ods" and failure.status == "corrupt":
            # calamine refuses a sheet it would hold densely (a cell far out) and names
            # no format then: the OpenDocument reader streams it
            state.details["streamed_sheets"] = state.details.get("streamed_sheets", 0) + 1
            yield from office.odf(data, node, state, "ods")
            return
        book = _ooxml(data, node, state, kind) if failure.status == "corrupt" else None
        if book is None or not book.paths:
            raise failure from None
        state.note("corrupt", f"{failure.message}; read with the streaming reader")
        for name in book.paths:
            yield from _streamed(book, name, node.at(name), state)
        return
    book = _ooxml(data, node, state, kind)
    for name in names:
        state.tick()
        loc = node.at(name)
        if book is not None and not book.fits(name):
            yield from _streamed(book, name, loc, state)
            continue
        try:
            sheet = wb.get_sheet_by_name(name)
            rows = sheet.iter_rows()
            # iter_rows pads rows from row 1 but starts columns at the first used one
            start_col = (sheet.start or (0, 0))[1]
        except Exception as e:
            failure = _failure(node, kind, e)
            if book is not None and name in book.paths:
                yield from _streamed(book, name, loc, state)
            else:
                state.skip(loc, failure.status, f"{safe_name(loc)}: sheet unreadable: "
                                                f"{reason(e)}", note=True)
            continue
        pad = [""] * start_col
        head = TableHeader()
        for n, row in enumerate(rows, start=1):
            if n % 4096 == 0:
                state.tick()
            cells = [v if type(v) is str else _cell(v) for v in row]
            if pad:
                cells = pad + cells
            text = row_text(cells)
            if len(text) < len(cells):  # every cell empty
                continue
            yield TextPart(text, loc, n, head.header if head.done else head.see(cells))


def _streamed(book: _Ooxml, name: str, loc: str, state: State) -> Iterator[TextPart]:
    try:
        yield from book.stream(name, loc)
    except (Stop, Failed):
        raise
    except Exception as e:
        state.skip(loc, "corrupt", f"{safe_name(loc)}: sheet unreadable: {reason(e)}",
                   note=True)
