"""A workbook the fast reader (python-calamine) cannot take is read sheet by sheet, with
the streaming reader where calamine would fail or abort, never left unscanned."""

from __future__ import annotations

import io
import json
import re
import zipfile

from leaksentry.config.extract import ExtractConfig
from pipelines.model import Document
from pipelines.process import DocumentScanner


def workbook(people, far_cell: bool = True) -> bytes:
    import xlsxwriter

    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True})
    ok = wb.add_worksheet("Normal")
    far = wb.add_worksheet("Far")
    for ws, group in ((ok, people[:6]), (far, people[6:])):
        ws.write_row(0, 0, ["name", "gender", "hkid", "hn"])
        for r, p in enumerate(group, start=1):
            ws.write_row(r, 0, [p.name, p.gender, p.hkid, p.hn])
            ws.write_number(r, 4, 12345678)
    if far_cell:
        far.write(1048575, 16383, "last cell")  # XFD1048576
    wb.close()
    return buf.getvalue()


def rewrite(data: bytes, member: str, change) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            raw = src.read(info)
            out.writestr(info.filename, change(raw) if info.filename == member else raw)
    return buf.getvalue()


def test_one_cell_at_xfd1048576_does_not_leave_the_workbook_unscanned(ext, people,
                                                                      real_matcher):
    data = workbook(people)
    r = ext.run(data, "export.xlsx")
    assert r.status == "ok" and r.ex.skipped == []
    r.assert_all_found(people)
    assert r.ex.details["streamed_sheets"] == 1
    far = r.where(people[6].hkid)[0]
    assert (far.location, far.row) == ("Far", 2)
    assert r.parts[-1].row == 1048576 and r.parts[-1].string.endswith("last cell")
    # through the real worker, where calamine's allocation failure would abort the process
    doc = Document(url="file:///export.xlsx", source="test", content=data,
                   filename="export.xlsx")
    with DocumentScanner(real_matcher, mode="fork") as scanner:
        result = scanner.scan(doc).result
    assert result.status == "ok"
    assert sorted(result.record_refs, key=int) == [p.ref for p in people]
    first_far = next(m for m in result.matches if m.record_ref == people[6].ref
                     and m.kind == "hkid")
    assert first_far.where == "Far!C2"
    ext.no_identifiers(json.dumps([m.to_json() for m in result.matches]), people)


def test_sheet_without_a_dimension_is_streamed(ext, people):
    data = rewrite(workbook(people, far_cell=False), "xl/worksheets/sheet2.xml",
                   lambda raw: re.sub(rb"<dimension [^>]*/>", b"", raw))
    r = ext.run(data, "x.xlsx")
    assert r.status == "ok"
    r.assert_all_found(people)
    assert r.ex.details["streamed_sheets"] == 1
    assert r.where(people[6].hkid)[0].row == 2


def test_a_sheet_neither_reader_can_read_is_skipped_the_others_read(ext, people):
    data = rewrite(workbook(people, far_cell=False), "xl/worksheets/sheet2.xml",
                   lambda raw: raw[: len(raw) // 2] + b"<<<&broken")
    r = ext.run(data, "x.xlsx")
    for p in people[:6]:
        assert r.where(p.hkid), p.ref
    assert [(s.where, s.status) for s in r.ex.skipped] == [("Far", "corrupt")]
    assert r.status == "corrupt"


def test_far_apart_cells_end_at_the_expanded_bytes_limit(ext, people):
    """3,000 rows each 16,384 cells wide (A1 and XFDn): the streaming reader charges
    each row's text, so the sheet stops at the limit (too_large)."""
    rows = "".join(f'<row r="{n}"><c r="XFD{n}" t="inlineStr"><is><t>x</t></is></c></row>'
                   for n in range(2, 3002))
    sheet = ('<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.'
             'openxmlformats.org/spreadsheetml/2006/main"><dimension ref="A1:XFD3001"/>'
             '<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>A1</t></is></c></row>'
             f"{rows}</sheetData></worksheet>").encode()
    data = rewrite(workbook(people, far_cell=False), "xl/worksheets/sheet2.xml",
                   lambda raw: sheet)
    r = ext.run(data, "wide.xlsx", ExtractConfig(max_expanded_bytes=16 << 20,
                                                 ratio_floor_bytes=1 << 20))
    assert r.status == "too_large"
    for p in people[:6]:
        assert r.where(p.hkid), p.ref  # the sheet before it was read


def test_ods_with_a_cell_at_the_last_row_and_column_is_streamed(ext):
    """LibreOffice's ODS with one cell at AMJ1048576 (fixtures/make_encrypted.py): calamine
    refuses it, the OpenDocument reader reads it, rows and columns where they are."""
    from pathlib import Path

    from leaksentry.synth import patients

    people = list(patients(12, seed=3))
    data = (Path(__file__).parent / "fixtures" / "far-cell.ods").read_bytes()
    r = ext.run(data, "far.ods")
    assert r.status == "ok" and r.ex.details["streamed_sheets"] == 1
    r.assert_all_found(people)
    first = r.where(people[0].hkid)[0]
    assert (first.location, first.row, first.header) == ("Sheet1", 2, ("name", "hkid", "hn"))
    last = r.parts[-1]
    assert last.row == 1048576 and last.string.count("\x1f") == 1023
