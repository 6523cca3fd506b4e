"""Formats through the real matcher: every planted record is matched (at record level
where its identifiers share a row or a line) and located as the analyst will see it."""

from __future__ import annotations

import base64
import gzip
import io
import json
from email.message import EmailMessage

import pytest
from fixtures_files import csv_bytes, docx_bytes, xlsx_bytes, zip_bytes

from pipelines.model import Document
from pipelines.process import DocumentScanner


def _pdf(rows: list[list[str]]) -> bytes:
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    y = 800
    for row in rows:
        for i, cell in enumerate(row[:4]):
            c.drawString(30 + 140 * i, y, cell)
        y -= 18
    c.save()
    return buf.getvalue()


def _eml(rows: list[list[str]]) -> bytes:
    msg = EmailMessage()
    msg["Subject"] = "files"
    msg.set_content("see attachment")
    msg.add_attachment(xlsx_bytes(rows), maintype="application", subtype="octet-stream",
                       filename="attachment.xlsx")
    return msg.as_bytes()


def _paste_b64(rows: list[list[str]]) -> bytes:
    blob = base64.encodebytes(zip_bytes({"export/patients.csv": csv_bytes(rows)})).decode()
    return f"leak sample:\n{blob}\n".encode()


def _json(rows: list[list[str]]) -> bytes:
    head = rows[0]
    return json.dumps({"patients": [dict(zip(head, r, strict=True)) for r in rows[1:]]}).encode()


def _html(rows: list[list[str]]) -> bytes:
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<html><body><p>Leaked:</p><table>{body}</table></body></html>".encode()


# name, maker, where the HKID of the first planted record (table row 2) is reported
CASES = [
    ("leak.csv", csv_bytes, "leak.csv!C2"),
    ("leak.xlsx", xlsx_bytes, "Sheet1!C2"),
    ("leak.pdf", _pdf, "page 1:line 2"),
    ("leak.docx", lambda rows: docx_bytes(rows, heading="Export"), "table 1!C2"),
    ("archive.zip", lambda rows: zip_bytes({"export/patients.csv": csv_bytes(rows)}),
     "archive.zip/export/patients.csv!C2"),
    ("leak.csv.gz", lambda rows: gzip.compress(csv_bytes(rows)), "leak.csv.gz/leak.csv!C2"),
    ("message.eml", _eml, "message.eml/attachment.xlsx/Sheet1!C2"),
    ("paste.txt", _paste_b64, "paste.txt/base64 at line 2/export/patients.csv!C2"),
    ("dump.json", _json, "$.patients[0]:line 3"),
    ("page.html", _html, "table 1!C2"),
]


@pytest.mark.parametrize(("name", "make", "where"), CASES, ids=[c[0] for c in CASES])
def test_every_planted_record_matched_and_located(ext, people, real_matcher, name, make,
                                                  where):
    rows = ext.table(people)
    doc = Document(url=f"file:///{name}", source="test", content=make(rows), filename=name)
    with DocumentScanner(real_matcher, mode="inline") as scanner:
        result = scanner.scan(doc).result
    refs = [p.ref for p in people]
    assert result.status == "ok", result.error
    assert sorted(result.record_refs, key=int) == refs
    assert sorted(result.record_level_refs, key=int) == refs
    first = next(m for m in result.matches if m.record_ref == "1" and m.kind == "hkid")
    assert first.where == where
    ext.no_identifiers(json.dumps(result.details) + repr(result.snippets)
                       + repr([m.to_json() for m in result.matches]), people)


def test_forked_worker_gives_the_same_result(ext, people, real_matcher):
    """The memory-mapped fingerprints work in the forked worker (warm and per-document)."""
    doc = Document(url="x", source="test", content=xlsx_bytes(ext.table(people)),
                   filename="leak.xlsx")
    for mode in ("warm", "fork"):
        with DocumentScanner(real_matcher, mode=mode) as scanner:
            first = scanner.scan(doc).result
            again = scanner.scan(doc).result
        assert first.matched_records == again.matched_records == len(people), mode
        assert first.matches[0].where == "Sheet1!C2"
