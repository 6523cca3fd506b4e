"""Test documents written by real writers (csv, xlsxwriter, python-docx, zipfile), as
bytes. Test modules import these by name (``from fixtures_files import xlsx_bytes``);
they are functions, not fixtures, so ``parametrize`` lists can name them."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable


def csv_bytes(rows: list[list[str]], delimiter: str = ",", encoding: str = "utf-8") -> bytes:
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter).writerows(rows)
    return buf.getvalue().encode(encoding)


def xlsx_bytes(rows: list[list[str]], sheet: str = "Sheet1", start_col: int = 0) -> bytes:
    import xlsxwriter

    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True})
    ws = wb.add_worksheet(sheet)
    for r, row in enumerate(rows):
        ws.write_row(r, start_col, row)
    wb.close()
    return buf.getvalue()


def docx_bytes(rows: list[list[str]], heading: str | None = None) -> bytes:
    """The rows as the document's one table, after a ``heading`` paragraph if given."""
    import docx

    d = docx.Document()
    if heading is not None:
        d.add_paragraph(heading)
    t = d.add_table(rows=0, cols=len(rows[0]))
    for row in rows:
        for cell, value in zip(t.add_row().cells, row, strict=True):
            cell.text = value
    d.save(buf := io.BytesIO())
    return buf.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def rewrite_member(data: bytes, member: str, change: Callable[[bytes], bytes]) -> bytes:
    """The zip ``data`` with ``member``'s bytes replaced by ``change(bytes)``; every entry
    keeps its header (name, date, compression), so only that member differs."""
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(buf, "w") as out:
        for info in src.infolist():
            raw = src.read(info)
            out.writestr(info, change(raw) if info.filename == member else raw)
    return buf.getvalue()
