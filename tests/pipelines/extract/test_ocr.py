"""OCR of images and scanned PDF pages through the real Tesseract (Debian's models) and the
real matcher: planted fictional records are found and located, limits give a status, and
content OCR could not read is listed as skipped, never reported clean.

Pages are kept few and small (each OCR'd page costs about a second on one core)."""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leaksentry.config.extract import ExtractConfig
from leaksentry.synth import Patient, patients, table_image
from pipelines.extract import detect
from pipelines.model import Document, Finding, ScanResult
from pipelines.process import DocumentScanner

ENG = ExtractConfig(ocr_languages="eng", ocr_dpi=150)
HEADER = ["Name", "Sex", "HKID", "Hospital No", "Procedure"]


def rows(people: list[Patient], header: bool = True) -> list[list[str]]:
    body = [[p.name, p.gender, f"{p.hkid[:-1]}({p.hkid[-1]})", p.hn, p.procedure]
            for p in people]
    return [HEADER, *body] if header else body


def encoded(img, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def scan(matcher, data: bytes, name: str, config: ExtractConfig = ENG,
         mode: str = "inline") -> ScanResult:
    doc = Document(url=f"file:///{name}", source="test", content=data, filename=name)
    with DocumentScanner(matcher, config, mode=mode) as scanner:
        return scanner.scan(doc).result


def output(result: ScanResult, name: str) -> str:
    """Everything scan --json and the store would say about the document."""
    finding = Finding(url=name, source="test", sha256="0", size=0, fetched_at=None,  # type: ignore[arg-type]
                      result=result)
    return json.dumps(finding.scan_json()) + json.dumps(result.details, default=str) \
        + repr(result.snippets)


def test_screenshot_of_20_rows_finds_every_record(ext, real_matcher):
    """A PNG screenshot with the default languages (eng+chi_tra); two HKIDs are drawn with
    a look-alike letter (O for 0, S for 5...) as a bad scan would show them: they are still
    found (Tesseract itself or, where it reads the letter, the check-digit repair of
    pipelines.match.ocrfix reads them back; tests/pipelines/match/test_ocrfix.py)."""
    people = list(patients(20, seed=3))
    table = rows(people)
    swapped = 0
    for row in table[1:]:
        for digit, letter in (("0", "O"), ("5", "S"), ("8", "B")):
            cell = row[2]
            if swapped < 2 and digit in cell[1:7]:
                row[2] = cell[:1] + cell[1:7].replace(digit, letter, 1) + cell[7:]
                swapped += 1
                break
    png = encoded(table_image(table, 150, inches=(7.5, 5.5)), "PNG")
    assert detect(png, "shot.png") == "png"
    result = scan(real_matcher, png, "shot.png", ExtractConfig(ocr_dpi=150))
    assert result.status == "ok", result.error
    assert sorted(result.record_refs, key=int) == [p.ref for p in people]
    assert result.ocr_pages == 1 and not result.skipped
    assert swapped == 2
    first = next(m for m in result.matches if m.record_ref == "1" and m.kind == "hkid")
    assert first.where.startswith("line ")
    ext.no_identifiers(output(result, "shot.png"), people)


def _scanned_pdf(people: list[Patient], per_page: int, dpi: int = 150) -> bytes:
    """An image-only PDF (Pillow writes each page as one image, no text layer)."""
    pages = [table_image(rows(people[i:i + per_page], header=i == 0), dpi,
                         inches=(8.27, 11.69))
             for i in range(0, len(people), per_page)]
    return encoded(pages[0], "PDF", save_all=True, append_images=pages[1:], resolution=dpi)


def test_scanned_pdf_of_25_pages_finds_every_record_on_its_page(ext, real_matcher):
    people = list(patients(50, seed=3))
    pdf = _scanned_pdf(people, per_page=2)
    result = scan(real_matcher, pdf, "scan.pdf")
    assert result.status == "ok", result.error
    assert result.ocr_pages == 25 and not result.skipped
    assert sorted(result.record_refs, key=int) == [p.ref for p in people]
    for m in result.matches:
        if m.kind == "hkid" and m.record_ref:
            page = (int(m.record_ref) - 1) // 2 + 1
            assert m.where.startswith(f"page {page}:line "), (m.record_ref, m.where)
    ext.no_identifiers(output(result, "scan.pdf"), people)


def test_pdf_with_text_and_scanned_pages_ocrs_only_the_scanned_ones(real_matcher):
    from reportlab.pdfgen import canvas

    people = list(patients(6, seed=3))
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(595, 842))
    c.drawString(40, 800, " ".join(rows(people[:2], header=False)[0]))
    c.drawString(40, 780, " ".join(rows(people[:2], header=False)[1]))
    c.showPage()
    c.drawInlineImage(table_image(rows(people[2:4]), 150, inches=(8.27, 2)), 0, 600,
                      595, 144)
    c.showPage()
    # a scan with a typed fax header: little text, an image over most of the page
    c.drawString(40, 820, "Fax from ward 5, page 3 of 3")
    c.drawInlineImage(table_image(rows(people[4:]), 150, inches=(8.27, 8)), 0, 200,
                      595, 576)
    c.showPage()
    c.showPage()  # blank: neither text nor OCR, not skipped
    c.save()
    result = scan(real_matcher, buf.getvalue(), "mixed.pdf")
    assert result.ocr_pages == 2 and not result.skipped
    assert sorted(result.record_refs, key=int) == ["1", "2", "3", "4", "5", "6"]
    pages = {m.record_ref: m.where.split(":")[0] for m in result.matches if m.kind == "hkid"}
    assert pages == {"1": "page 1", "2": "page 1", "3": "page 2", "4": "page 2",
                     "5": "page 3", "6": "page 3"}


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF", "BMP", "GIF", "WEBP"])
def test_each_image_format_is_read(ext, real_matcher, fmt):
    people = list(patients(3, seed=3))
    img = table_image(rows(people), 150, inches=(7, 1.8))
    kw = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    data = encoded(img if fmt != "GIF" else img.convert("P"), fmt, **kw)
    name = f"shot.{fmt.lower()}"
    assert detect(data, name) == {"JPEG": "jpeg"}.get(fmt, fmt.lower())
    assert detect(data, "noname") == detect(data, name)  # by magic bytes, not by name
    result = scan(real_matcher, data, name)
    assert result.status == "ok", result.error
    assert sorted(result.record_refs, key=int) == ["1", "2", "3"]
    assert result.ocr_pages == 1
    ext.no_identifiers(output(result, name), people)


def test_multi_page_tiff_pages_are_located_in_the_worker_process(real_matcher):
    people = list(patients(2, seed=3))
    a, b = (table_image(rows([p]), 150, inches=(7, 1.2)) for p in people)
    result = scan(real_matcher, encoded(a, "TIFF", save_all=True, append_images=[b]),
                  "fax.tif", mode="warm")
    assert result.ocr_pages == 2
    where = {m.record_ref: m.where.split(":")[0] for m in result.matches if m.kind == "hkid"}
    assert where == {"1": "page 1", "2": "page 2"}


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with a few bytes of pixel data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))


def _csv(people: list[Patient]) -> bytes:
    return "\n".join(",".join(r) for r in rows(people)).encode()


def test_decompression_bomb_png_is_too_large_and_the_batch_goes_on(ext, real_matcher):
    bomb = _png_header(20_000, 20_000)
    result = scan(real_matcher, bomb, "bomb.png")
    assert result.status == "too_large"
    assert "20000 x 20000" in result.error and not result.ocr_pages
    # as a member: the rest of the archive is scanned, the bomb is listed
    people = list(patients(3, seed=3))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("shots/bomb.png", bomb)
        zf.writestr("export/patients.csv", _csv(people))
    result = scan(real_matcher, buf.getvalue(), "batch.zip")
    assert sorted(result.record_refs, key=int) == ["1", "2", "3"]
    assert [(s.where, s.status) for s in result.skipped] == \
        [("batch.zip/shots/bomb.png", "too_large")]
    assert result.partial


def _tiff_pages(n: int, side: int = 16) -> bytes:
    """A little-endian TIFF of ``n`` white side x side pages sharing one strip, written
    directly (Pillow's writer takes minutes for 10,000 pages)."""
    strip = 8
    first = strip + side * side
    entries = [(256, 3, side), (257, 3, side), (258, 3, 8), (259, 3, 1), (262, 3, 1),
               (273, 4, strip), (277, 3, 1), (278, 3, side), (279, 4, side * side)]
    size = 2 + 12 * len(entries) + 4
    out = [b"II*\x00", struct.pack("<I", first), b"\xff" * (side * side)]
    for i in range(n):
        nxt = first + (i + 1) * size if i < n - 1 else 0
        out.append(struct.pack("<H", len(entries)))
        out += [struct.pack("<HHII", tag, kind, 1, value) for tag, kind, value in entries]
        out.append(struct.pack("<I", nxt))
    return b"".join(out)


def test_tiff_with_10000_pages_is_bounded_by_the_page_limit(real_matcher):
    tiff = _tiff_pages(10_000)
    assert detect(tiff, "fax.tif") == "tiff"
    people = list(patients(2, seed=3))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("fax.tif", tiff)
        zf.writestr("patients.csv", _csv(people))
    config = ExtractConfig(ocr_languages="eng", ocr_max_pages=5)
    result = scan(real_matcher, buf.getvalue(), "batch.zip", config)
    assert result.ocr_pages == 5
    assert [(s.where, s.status) for s in result.skipped] == \
        [("batch.zip/fax.tif/page 6", "too_large")]
    assert "5 pages per document" in result.skipped[0].error
    assert sorted(result.record_refs, key=int) == ["1", "2"]  # the rest of the batch


def test_ocr_switched_off_or_unavailable_is_skipped_not_clean(ext, real_matcher, tmp_path):
    people = list(patients(4, seed=3))
    pdf = _scanned_pdf(people, per_page=2)
    png = encoded(table_image(rows(people), 100, inches=(6, 2)), "PNG")
    for config in (ExtractConfig(ocr=False),
                   ExtractConfig(ocr_tessdata=str(tmp_path))):  # no models there
        result = scan(real_matcher, pdf, "scan.pdf", config)
        assert result.matched_records == 0 and result.ocr_pages is None
        assert [(s.where, s.status) for s in result.skipped] == [("pages 1-2", "unsupported")]
        assert "2 scanned pages" in result.skipped[0].error and "OCR" in result.skipped[0].error
        image = scan(real_matcher, png, "shot.png", config)
        assert image.status == "unsupported" and "OCR" in image.error
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("shot.png", png)
        member = scan(real_matcher, buf.getvalue(), "shots.zip", config)
        assert [(s.where, s.status) for s in member.skipped] == \
            [("shots.zip/shot.png", "unsupported")]
        ext.no_identifiers(output(result, "scan.pdf") + output(image, "shot.png")
                           + output(member, "shots.zip"), people)


def test_scanned_pdf_past_the_page_limit_lists_the_rest_once(real_matcher):
    people = list(patients(60, seed=3))
    pages = [table_image(rows([p]), 100, inches=(4, 0.8)) for p in people]
    pdf = encoded(pages[0], "PDF", save_all=True, append_images=pages[1:], resolution=100)
    result = scan(real_matcher, pdf, "scan.pdf", ExtractConfig(ocr_languages="eng",
                                                               ocr_max_pages=2))
    assert result.ocr_pages == 2
    assert [(s.where, s.status) for s in result.skipped] == [("pages 3-60", "too_large")]
    assert "58 scanned pages" in result.skipped[0].error


def test_ocr_time_share_used_up_lists_the_remaining_pages(real_matcher):
    people = list(patients(6, seed=3))
    pdf = _scanned_pdf(people, per_page=2)
    # 3 pages, OCR may use 1% of 5 s: rendering and reading one page take longer than that
    config = ExtractConfig(ocr_languages="eng", ocr_dpi=150, time_limit=5,
                           ocr_time_share=0.01)
    result = scan(real_matcher, pdf, "scan.pdf", config)
    assert result.skipped and {s.status for s in result.skipped} == {"timeout"}
    # every page is OCR'd or listed: "page 3", "pages 2-3", "pages 1-3"
    first = int(result.skipped[-1].where.split()[-1].split("-")[0])
    assert result.skipped[-1].where.endswith("3") and (result.ocr_pages or 0) >= first - 1


def test_image_detection_needs_the_whole_signature():
    assert detect(b"BM" + b"and then some text, not a bitmap at all", "notes") != "bmp"
    assert detect(b"RIFF\x10\x00\x00\x00WAVEfmt ", "a.wav") != "webp"
    assert detect(b"II*\x00" + bytes(16)) == "tiff" and detect(b"MM\x00*" + bytes(16)) == "tiff"


def test_ocr_settings_are_validated_with_the_field_named():
    from pydantic import ValidationError

    for bad in ({"ocr_languages": "eng chi_tra"}, {"ocr_dpi": 30}, {"ocr_max_pages": 0},
                {"ocr_time_share": 1.5}, {"ocr_max_pixels": -1}, {"ocr_psm": 1}):
        with pytest.raises(ValidationError) as e:
            ExtractConfig(**bad)
        assert next(iter(bad)) in str(e.value)
    c = ExtractConfig()
    assert (c.ocr, c.ocr_languages, c.ocr_dpi) == (True, "eng+chi_tra", 200)


def _small_images() -> list[bytes]:
    from PIL import Image, ImageDraw

    img = Image.new("L", (60, 24), 255)
    ImageDraw.Draw(img).text((2, 4), "A1", fill=0)
    out = [encoded(img, fmt) for fmt in ("PNG", "JPEG", "BMP", "GIF", "WEBP")]
    out.append(encoded(img, "TIFF", save_all=True, append_images=[img]))
    return out


_SMALL = _small_images()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_images_get_a_status_and_never_raise(data):
    from pipelines.extract import extract
    from pipelines.model import STATUSES

    raw = bytearray(data.draw(st.sampled_from(_SMALL)))
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(8, len(raw)))]
    ex = extract(bytes(raw), "x", ExtractConfig(ocr_languages="eng", time_limit=5))
    for part in ex.parts():
        assert isinstance(part.text, str)
    assert ex.status in STATUSES
    assert ex.status == "ok" or (ex.error and "\n" not in ex.error)
