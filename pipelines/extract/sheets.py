"""Spreadsheets (XLSX/XLSM/XLSB/XLS/ODS) through python-calamine.

Each sheet row is one record part at location "<sheet name>", row = the
spreadsheet's own 1-based row number, cells padded from column A so the
matcher can say "Sheet1!C2". Formulas give their cached values. Rows are
turned into Python values lazily (``iter_rows``); the sheet itself is held in
calamine's compact Rust cells.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from typing import Any

from python_calamine import CalamineWorkbook

from pipelines.extract.node import Node
from pipelines.extract.state import Failed, State, reason
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


def spreadsheet(data: bytes, node: Node, state: State, kind: str = "xlsx") -> Iterator[TextPart]:
    try:
        wb = CalamineWorkbook.from_filelike(io.BytesIO(data))
        names = list(wb.sheet_names)
    except Exception as e:
        raise _failure(node, kind, e) from None
    for name in names:
        state.tick()
        try:
            sheet = wb.get_sheet_by_name(name)
            rows = sheet.iter_rows()
            # iter_rows pads rows from row 1 but starts columns at the first used one
            start_col = (sheet.start or (0, 0))[1]
        except Exception as e:
            raise _failure(node, kind, e) from None
        pad = [""] * start_col
        loc = node.at(name)
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
