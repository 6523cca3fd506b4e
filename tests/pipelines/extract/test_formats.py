"""Every format, written by a real writer with planted fictional patients: every planted
record is extracted and located (sheet/row, page, member path, JSON path)."""

from __future__ import annotations

import base64
import bz2
import csv
import gzip
import io
import json
import lzma
import random
import shutil
import subprocess
import tarfile
import zipfile
from email.message import EmailMessage

import pytest

from leaksentry.synth import written_hkid
from pipelines.extract import detect
from pipelines.model import CELL_SEP


def csv_bytes(rows: list[list[str]], delimiter: str = ",", encoding: str = "utf-8") -> bytes:
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter).writerows(rows)
    return buf.getvalue().encode(encoding)


def xlsx_bytes(rows: list[list[str]], sheet: str = "Patients", start_col: int = 0) -> bytes:
    import xlsxwriter

    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True})
    ws = wb.add_worksheet(sheet)
    for r, row in enumerate(rows):
        ws.write_row(r, start_col, row)
    wb.close()
    return buf.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


# -- text encodings ------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "big5",
                                      "gb18030", "shift_jis", "latin-1"])
def test_text_in_common_encodings(ext, people, encoding):
    rng = random.Random(5)
    chinese = encoding in ("big5", "gb18030", "utf-8", "utf-16", "utf-8-sig", "utf-16-le")
    title = {"shift_jis": "患者リスト（流出）", "latin-1": "Ménage à trois: données"}.get(
        encoding, "病人名單 (leaked)")
    lines = [title]
    for p in people:
        written = written_hkid(p.hkid, rng)
        try:
            written.encode(encoding)
        except UnicodeEncodeError:  # full-width forms do not exist in Latin-1
            written = f"{p.hkid[:-1]}({p.hkid[-1]})"
        name = p.name_zh if chinese else p.name
        lines.append(f"{name} {p.gender} HKID {written} file {p.hn}")
    data = ("\n".join(lines) + "\n").encode(encoding)
    r = ext.run(data, "paste.txt")
    assert r.status == "ok"
    r.assert_all_found(people)
    joined = "".join(p.string for p in r.parts)
    assert title in joined  # decoded, not mojibake
    if chinese:
        assert people[0].name_zh in joined
    assert all(p.location == "" and p.row is None for p in r.parts)


def test_html_visible_text_only(ext, people):
    p = people[0]
    html = (f"<html><head><title>dump</title><style>.x{{color:red}}</style>"
            f"<script>var secret = 'not text';</script></head><body><h1>Dump</h1>"
            f"<table><tr><td>{p.name}</td><td>{p.hkid}</td><td>{p.hn}</td></tr></table>"
            f"<p>see also {people[1].hkid}</p></body></html>").encode()
    r = ext.run(html)
    assert r.ex.details["type"] == "html"
    text = "".join(x.string for x in r.parts)
    assert "var secret" not in text and "color:red" not in text
    assert r.where(p.hkid) and r.where(people[1].hkid)
    row = r.where(p.hkid)[0]
    assert (row.location, row.row) == ("table 1", 1)
    assert row.string.split(CELL_SEP) == [p.name, p.hkid, p.hn]
    assert r.where(people[1].hkid)[0].location == ""
    assert "Dump" in r.parts[-1].string


def test_json_values_with_key_paths(ext, people):
    doc = {"export": {"patients": [{"name": p.name, "hkid": p.hkid, "hn": p.hn,
                                    "visits": [{"procedure": p.procedure}]} for p in people]}}
    r = ext.run(json.dumps(doc, ensure_ascii=False).encode(), "dump.json")
    assert r.status == "ok"
    r.assert_all_found(people)
    part = r.where(people[3].hkid)[0]
    assert part.location == "$.export.patients[3]"
    assert people[3].hn in part.string  # a record's fields stay in one part
    assert any(x.location == "$.export.patients[3].visits[0]" for x in r.parts)


def test_ndjson(ext, people):
    data = "\n".join(json.dumps({"hkid": p.hkid, "hn": p.hn}) for p in people).encode()
    r = ext.run(data, "dump.ndjson")
    r.assert_all_found(people)
    assert r.where(people[2].hkid)[0].location == "$[2]"


def test_ndjson_detected_without_name(ext, people):
    data = "\n".join(json.dumps({"hkid": p.hkid}) for p in people).encode()
    assert detect(data) == "ndjson"


def test_xml(ext, people):
    body = "".join(f'<patient id="{p.ref}"><name>{p.name}</name><hkid>{p.hkid}</hkid>'
                   f"<hn>{p.hn}</hn></patient>" for p in people)
    r = ext.run(f'<?xml version="1.0"?><patients>{body}</patients>'.encode(), "x.xml")
    assert r.status == "ok"
    r.assert_all_found(people)


def test_xml_entity_expansion_is_off(ext):
    bomb = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">'
            b']><l>&c;&c;&c;&c;</l>')
    r = ext.run(bomb, "laughs.xml")
    assert sum(len(p.string) for p in r.parts) < 1000


# -- tables --------------------------------------------------------------------------------

@pytest.mark.parametrize(("delimiter", "name"), [(",", "p.csv"), ("\t", "p.tsv"),
                                                 (";", "p.csv"), ("|", "export.txt")])
def test_csv_rows_are_records(ext, people, delimiter, name):
    rows = ext.table(people)
    r = ext.run(csv_bytes(rows, delimiter), name)
    assert r.status == "ok"
    r.assert_all_found(people)
    if name.endswith((".csv", ".tsv")):
        assert len(r.parts) == len(rows)
        part = r.where(people[4].hkid)[0]
        assert part.row == 6 and part.location == name
        assert part.text.split(CELL_SEP)[2] == people[4].hkid


def test_csv_in_big5_with_separator_inside_a_cell(ext, people):
    rows = [["姓名", "身份證", "備註", "檔案"]]
    rows += [[p.name_zh, p.hkid, f"note{CELL_SEP}x", p.hn] for p in people]
    r = ext.run(csv_bytes(rows, encoding="big5"), "病人.csv")
    r.assert_all_found(people)
    part = r.where(people[0].hkid)[0]
    assert part.text.split(CELL_SEP) == [people[0].name_zh, people[0].hkid, "note x", people[0].hn]


def test_xlsx_rows_with_sheet_and_row(ext, people):
    data = xlsx_bytes(ext.table(people), start_col=1)
    r = ext.run(data, "leak.xlsx")
    assert r.status == "ok" and r.ex.details["type"] == "xlsx"
    r.assert_all_found(people)
    part = r.where(people[0].hkid)[0]
    assert (part.location, part.row) == ("Patients", 2)
    # data starting in column B: the HKID is still the 4th cell (column D)
    assert part.text.split(CELL_SEP)[3] == people[0].hkid


def test_xlsx_formula_cached_values_and_numbers(ext, people):
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Data"
    ws.append(["hkid", "hn", "visits"])
    for p in people:
        ws.append([p.hkid, p.hn, 3])
    wb.save(buf := io.BytesIO())
    # openpyxl writes no cached values; xlsxwriter does (value=...)
    import xlsxwriter

    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    sheet = book.add_worksheet("F")
    sheet.write_formula(0, 0, '="X"&"Y"', None, people[0].hkid)
    sheet.write_number(0, 1, 12345678)
    book.close()
    r = ext.run(buf.getvalue(), "a.xlsx")
    r.assert_all_found(people)
    assert r.where(people[0].hkid)[0].text.endswith(CELL_SEP + "3")
    r2 = ext.run(out.getvalue(), "b.xlsx")
    assert r2.parts[0].text == f"{people[0].hkid}{CELL_SEP}12345678"


def test_xlsm_name_and_many_sheets(ext, people):
    import xlsxwriter

    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    for i, chunk in enumerate((people[:6], people[6:]), start=1):
        sheet = book.add_worksheet(f"Ward {i}")
        for r, p in enumerate(chunk):
            sheet.write_row(r, 0, [p.hkid, p.hn])
    book.close()
    r = ext.run(out.getvalue(), "macro.xlsm")
    r.assert_all_found(people)
    assert r.where(people[7].hkid)[0].location == "Ward 2"
    assert r.where(people[7].hkid)[0].row == 2


# -- documents -----------------------------------------------------------------------------

def test_pdf_text_per_page_with_rows_on_one_line(ext, people):
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4)
    for page in (people[:6], people[6:]):
        y = 800
        for p in page:
            c.drawString(40, y, p.name)
            c.drawString(200, y, p.hkid)
            c.drawString(320, y, p.hn)
            y -= 20
        c.showPage()
    c.save()
    r = ext.run(buf.getvalue(), "report.pdf")
    assert r.status == "ok"
    r.assert_all_found(people)
    assert r.where(people[8].hkid)[0].location == "page 2"
    line = next(ln for ln in r.where(people[8].hkid)[0].string.splitlines()
                if people[8].hkid in ln)
    assert people[8].hn in line  # the row stays on one line


def test_docx_paragraphs_and_table_rows(ext, people):
    import docx

    d = docx.Document()
    d.add_paragraph(f"Incident: {people[0].name} {people[0].hkid} ({people[0].hn})")
    t = d.add_table(rows=0, cols=3)
    for p in people[1:]:
        cells = t.add_row().cells
        cells[0].text, cells[1].text, cells[2].text = p.name, p.hkid, p.hn
    d.save(buf := io.BytesIO())
    r = ext.run(buf.getvalue(), "memo.docx")
    assert r.ex.details["type"] == "docx"
    r.assert_all_found(people)
    assert r.where(people[0].hkid)[0].location == "document"
    row = r.where(people[3].hkid)[0]
    assert (row.location, row.row) == ("table 1", 3)
    assert row.text.split(CELL_SEP)[1:] == [people[3].hkid, people[3].hn]


def test_pptx_slides_and_tables(ext, people):
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    s1 = prs.slides.add_slide(prs.slide_layouts[5])
    s1.shapes.title.text = f"Case {people[0].hkid} / {people[0].hn}"
    s2 = prs.slides.add_slide(prs.slide_layouts[5])
    shape = s2.shapes.add_table(len(people) - 1, 2, Inches(1), Inches(1), Inches(6), Inches(4))
    for i, p in enumerate(people[1:]):
        shape.table.cell(i, 0).text = p.hkid
        shape.table.cell(i, 1).text = p.hn
    prs.save(buf := io.BytesIO())
    r = ext.run(buf.getvalue(), "deck.pptx")
    r.assert_all_found(people)
    assert r.where(people[0].hkid)[0].location == "slide 1"
    assert r.where(people[2].hkid)[0].location == "slide 2 table 1"
    assert r.where(people[2].hkid)[0].row == 2


def test_rtf(ext, people):
    # no RTF writer library is installed; this is what WordPad writes for plain paragraphs
    body = "".join(f"{p.name} {p.hkid} {p.hn}\\par\n" for p in people)
    data = ("{\\rtf1\\ansi\\deff0{\\fonttbl{\\f0 Arial;}}\\f0\\fs20 " + body + "}").encode()
    r = ext.run(data, "note.rtf")
    assert r.ex.details["type"] == "rtf"
    r.assert_all_found(people)


# -- archives ------------------------------------------------------------------------------

def test_zip_member_paths_as_locations(ext, people):
    data = zip_bytes({"export/patients.csv": csv_bytes(ext.table(people[:6])),
                      "export/more.xlsx": xlsx_bytes(ext.table(people[6:])),
                      "tool.bin": b"\x7fELF" + b"\x00" * 50})
    r = ext.run(data, "archive.zip")
    assert r.status == "ok"
    r.assert_all_found(people)
    assert r.where(people[0].hkid)[0].location == "archive.zip/export/patients.csv"
    assert r.where(people[0].hkid)[0].row == 2
    assert r.where(people[7].hkid)[0].location == "archive.zip/export/more.xlsx/Patients"
    assert r.ex.details["skipped_members"] == 1


def test_aes_zip_with_candidate_password(ext, people):
    import pyzipper

    buf = io.BytesIO()
    with pyzipper.AESZipFile(buf, "w", compression=pyzipper.ZIP_DEFLATED,
                             encryption=pyzipper.WZ_AES) as zf:
        zf.setpassword(b"s3cret-from-paste")
        zf.writestr("dump/patients.csv", csv_bytes(ext.table(people)))
    locked = ext.run(buf.getvalue(), "dump.zip")
    assert locked.status == "encrypted" and not locked.parts
    assert locked.ex.details["encrypted_members"] == ["dump.zip/dump/patients.csv"]
    opened = ext.run(buf.getvalue(), "dump.zip", passwords=("nope", "s3cret-from-paste"))
    assert opened.status == "ok"
    opened.assert_all_found(people)
    assert opened.ex.details["passwords_worked"] == 1
    assert "s3cret" not in opened.outputs()


@pytest.mark.skipif(not shutil.which("zip"), reason="Info-ZIP's zip writes ZipCrypto")
def test_zipcrypto_zip_with_configured_password(ext, people, tmp_path):
    from leaksentry.config.extract import ExtractConfig

    (tmp_path / "patients.csv").write_bytes(csv_bytes(ext.table(people)))
    subprocess.run(["zip", "-q", "-P", "infected", "leak.zip", "patients.csv"], cwd=tmp_path,
                   check=True)
    data = (tmp_path / "leak.zip").read_bytes()
    r = ext.run(data, "leak.zip")  # "infected" is among the default candidates
    assert r.status == "ok"
    r.assert_all_found(people)
    locked = ext.run(data, "leak.zip", ExtractConfig(passwords=[]))
    assert locked.status == "encrypted"
    assert locked.ex.details["encrypted_members"] == ["leak.zip/patients.csv"]
    assert not locked.parts


def test_seven_zip_plain_and_encrypted(ext, people):
    import py7zr

    from leaksentry.config.extract import ExtractConfig

    def make(password: str | None, header: bool = False) -> bytes:
        buf = io.BytesIO()
        with py7zr.SevenZipFile(buf, "w", password=password) as sz:
            if header:
                sz.set_encrypted_header(True)
            sz.writestr(csv_bytes(ext.table(people)), "export/patients.csv")
        return buf.getvalue()

    r = ext.run(make(None), "leak.7z")
    assert r.status == "ok"
    r.assert_all_found(people)
    assert r.where(people[0].hkid)[0].location == "leak.7z/export/patients.csv"
    locked = ext.run(make("pw-in-paste"), "leak.7z", ExtractConfig(passwords=["wrong"]))
    assert locked.status == "encrypted"
    assert locked.ex.details["encrypted_members"] == ["leak.7z/export/patients.csv"]
    opened = ext.run(make("pw-in-paste", header=True), "leak.7z", passwords=("pw-in-paste",))
    assert opened.status == "ok"
    opened.assert_all_found(people)


def test_tar_gz_bz2_xz(ext, people):
    payload = csv_bytes(ext.table(people))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("data/patients.csv")
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    r = ext.run(buf.getvalue(), "backup.tar.gz")
    r.assert_all_found(people)
    assert r.where(people[1].hkid)[0].location == "backup.tar.gz/backup.tar/data/patients.csv"
    for compress, name in ((bz2.compress, "p.csv.bz2"), (lzma.compress, "p.csv.xz"),
                           (gzip.compress, "p.csv.gz")):
        r = ext.run(compress(payload), name)
        assert r.status == "ok", name
        r.assert_all_found(people)
        assert r.where(people[1].hkid)[0].location == f"{name}/p.csv"
        assert r.where(people[1].hkid)[0].row == 3


def test_nested_archives(ext, people):
    inner = zip_bytes({"patients.xlsx": xlsx_bytes(ext.table(people))})
    outer = zip_bytes({"level1/inner.zip": inner})
    r = ext.run(gzip.compress(outer), "outer.zip.gz")
    r.assert_all_found(people)
    assert r.where(people[0].hkid)[0].location == \
        "outer.zip.gz/outer.zip/level1/inner.zip/patients.xlsx/Patients"


# -- encoded payloads ------------------------------------------------------------------------

def test_base64_zip_in_a_paste(ext, people):
    blob = base64.encodebytes(zip_bytes({"p.csv": csv_bytes(ext.table(people))})).decode()
    paste = f"found this, enjoy\n\n{blob}\n-- anon\n".encode()
    r = ext.run(paste, "paste.txt")
    r.assert_all_found(people)
    assert r.where(people[0].hkid)[0].location == "paste.txt/base64 at line 3/p.csv"


def test_hex_and_one_line_base64_text(ext, people):
    csv_data = csv_bytes(ext.table(people))
    paste = (f"hex: {csv_data.hex()}\n"
             f'{{"file": "{base64.b64encode(csv_data).decode()}"}}\n').encode()
    r = ext.run(paste, "paste.txt")
    for p in people:
        locations = {x.location for x in r.where(p.hkid)}
        assert any("hex at line 1" in loc for loc in locations)
        assert any("base64 at line 2" in loc for loc in locations)


def test_eml_with_attachment_and_quoted_printable_body(ext, people):
    msg = EmailMessage()
    msg["From"] = "someone@example.net"
    msg["To"] = "buyer@example.org"
    msg["Subject"] = "sample"
    msg.set_content(f"Sample record: {people[0].name} {people[0].hkid} {people[0].hn} "
                    "— rest attached " + "ü" * 80, cte="quoted-printable")
    msg.add_attachment(xlsx_bytes(ext.table(people[1:])), maintype="application",
                       subtype="vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                       filename="attachment.xlsx")
    data = msg.as_bytes()
    assert b"quoted-printable" in data
    r = ext.run(data, "message.eml")
    assert r.ex.details["type"] == "eml"
    r.assert_all_found(people)
    assert r.where(people[0].hkid)[0].location == "message.eml/body.txt"
    assert r.where(people[2].hkid)[0].location == "message.eml/attachment.xlsx/Patients"
    # detected without the name, too
    assert detect(data) == "eml"


def test_unsupported_gives_detected_type(ext):
    r = ext.run(b"\x7fELF" + bytes(range(256)) * 4, "tool")
    assert r.status == "unsupported"
    assert "elf" in r.ex.error and r.ex.details["type"] == "elf"


def test_xls_written_by_xlwt(ext, people):
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("Legacy")
    for r, row in enumerate(ext.table(people)):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    book.save(buf := io.BytesIO())
    data = buf.getvalue()
    assert detect(data, "") == "xls"
    r = ext.run(data, "old.xls")
    assert r.status == "ok", r.ex.error
    r.assert_all_found(people)
    part = r.where(people[5].hkid)[0]
    assert (part.location, part.row) == ("Legacy", 7)


def test_ods_written_by_odfpy(ext, people):
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    doc = OpenDocumentSpreadsheet()
    table = Table(name="Ward")
    for row in ext.table(people):
        tr = TableRow()
        for value in row:
            cell = TableCell(valuetype="string")
            cell.addElement(P(text=value))
            tr.addElement(cell)
        table.addElement(tr)
    doc.spreadsheet.addElement(table)
    doc.save(buf := io.BytesIO())
    data = buf.getvalue()
    assert detect(data, "") == "ods"
    r = ext.run(data, "sheet.ods")
    assert r.status == "ok", r.ex.error
    r.assert_all_found(people)
    part = r.where(people[0].hkid)[0]
    assert (part.location, part.row) == ("Ward", 2)
