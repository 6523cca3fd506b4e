"""Screenshots pasted into Office documents: a DOCX, PPTX and XLSX made by their own
writer libraries, each holding a picture of a patient table and no text identifiers,
find the pictured records through OCR (real Tesseract, real matcher); a vector drawing
is listed as skipped, never passed over."""

from __future__ import annotations

import io
import zipfile

import docx
import xlsxwriter
from pptx import Presentation
from pptx.util import Inches

from leaksentry.config.extract import ExtractConfig
from leaksentry.synth import patients, table_image
from pipelines.model import Document, ScanResult
from pipelines.process import DocumentScanner

ENG = ExtractConfig(ocr_languages="eng", ocr_dpi=150)
PEOPLE = list(patients(6, seed=3))  # records 1..6 of the real_matcher register


def screenshot() -> bytes:
    rows = [["Name", "HKID", "Procedure"],
            *([p.name, f"{p.hkid[:-1]}({p.hkid[-1]})", p.procedure] for p in PEOPLE)]
    buf = io.BytesIO()
    table_image(rows, 150, inches=(6.5, 2.5)).save(buf, "PNG")
    return buf.getvalue()


def scan(matcher, data: bytes, name: str, config: ExtractConfig = ENG) -> ScanResult:
    doc = Document(url=f"file:///{name}", source="test", content=data, filename=name)
    with DocumentScanner(matcher, config, mode="inline") as scanner:
        return scanner.scan(doc).result


def made_docx(pictures: list[bytes]) -> bytes:
    d = docx.Document()
    d.add_paragraph("Ward handover, see attached screenshot.")
    for png in pictures:
        d.add_picture(io.BytesIO(png), width=docx.shared.Inches(6))
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


def test_docx_screenshot_is_read(real_matcher, ext) -> None:
    result = scan(real_matcher, made_docx([screenshot()]), "handover.docx")
    assert result.status == "ok", result.error
    assert sorted(result.record_refs, key=int) == [p.ref for p in PEOPLE]
    assert result.ocr_pages == 1
    where = {m.where for m in result.matches}
    assert all(w.startswith("handover.docx/word/media/") for w in where), where
    ext.no_identifiers(repr(result.matches) + repr(result.details), PEOPLE)


def test_pptx_and_xlsx_screenshots_are_read(real_matcher, tmp_path) -> None:
    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[6])
    slide.shapes.add_picture(io.BytesIO(screenshot()), Inches(0.5), Inches(0.5),
                             width=Inches(9))
    out = io.BytesIO()
    prs.save(out)
    result = scan(real_matcher, out.getvalue(), "deck.pptx")
    assert sorted(result.record_refs, key=int) == [p.ref for p in PEOPLE]

    path = tmp_path / "book.xlsx"
    (tmp_path / "shot.png").write_bytes(screenshot())
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet("Notes")
    ws.write(0, 0, "see picture")
    ws.insert_image("B2", str(tmp_path / "shot.png"))
    wb.close()
    result = scan(real_matcher, path.read_bytes(), "book.xlsx")
    assert sorted(result.record_refs, key=int) == [p.ref for p in PEOPLE]
    assert any(m.where.startswith("book.xlsx/xl/media/") for m in result.matches)


def test_vector_drawing_and_ocr_off_are_listed_not_clean(real_matcher) -> None:
    data = made_docx([screenshot()])
    # add an EMF drawing beside the picture, as Word does for pasted charts
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr("word/media/image9.emf", b"\x01\x00\x00\x00" + b"\x00" * 80)
    result = scan(real_matcher, buf.getvalue(), "report.docx")
    assert [(s.where, s.status) for s in result.skipped] == [
        ("report.docx/word/media/image9.emf", "unsupported")]
    assert result.record_refs  # the raster picture was still read
    off = scan(real_matcher, data, "report.docx", ExtractConfig(ocr=False))
    assert not off.record_refs
    assert [(s.where, s.status) for s in off.skipped] == [
        ("report.docx/word/media/image1.png", "unsupported")]
