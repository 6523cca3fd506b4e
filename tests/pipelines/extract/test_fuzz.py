"""Fuzzing the entry point with hypothesis: whatever the bytes and the name, no
exception escapes and the result has a valid status (and an error when not ok)."""

from __future__ import annotations

import io
import zipfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leaksentry.config.extract import ExtractConfig
from pipelines.extract import extract
from pipelines.model import STATUSES, TextPart

_CFG = ExtractConfig(time_limit=5, max_expanded_bytes=8 * 1024 * 1024, max_parts=10_000,
                     passwords=[])
_MAGICS = [b"%PDF-1.4\n", b"PK\x03\x04", b"7z\xbc\xaf\x27\x1c", b"\x1f\x8b\x08", b"BZh9",
           b"\xfd7zXZ\x00", b"{\\rtf1 ", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", b"{", b"[",
           b"<?xml version='1.0'?>", b"<html>", b"From: x\nSubject: y\n\n", b"\xff\xfe",
           b"\xef\xbb\xbf", b""]
_NAMES = ["", "a.csv", "a.tsv", "a.json", "a.ndjson", "a.xml", "a.html", "a.eml", "a.xlsx",
          "a.xls", "a.ods", "a.docx", "a.pptx", "a.pdf", "a.zip", "a.7z", "a.tar", "a.gz",
          "a.txt", "weird/../name?.bin"]


def _check(data: bytes, name: str) -> None:
    ex = extract(data, name, _CFG)
    for part in ex.parts():
        assert isinstance(part, TextPart) and isinstance(part.text, str | bytes)
    assert ex.status in STATUSES
    if ex.status != "ok":
        assert ex.error and "\n" not in ex.error
    assert isinstance(ex.details, dict)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prefix=st.sampled_from(_MAGICS), body=st.binary(max_size=2048),
       name=st.sampled_from(_NAMES))
def test_random_bytes_behind_magic_numbers(prefix: bytes, body: bytes, name: str) -> None:
    _check(prefix + body, name)


def _sample_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/p.csv", "name,hkid\nCHAN,A1234563\n" * 20)
        zf.writestr("b.json", '{"x": ["A1234563"]}')
    return buf.getvalue()


_ZIP = _sample_zip()


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_archive(data: st.DataObject) -> None:
    raw = bytearray(_ZIP)
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(raw)))
    _check(bytes(raw[:cut]), data.draw(st.sampled_from(["x.zip", ""])))


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=500), name=st.sampled_from(_NAMES[:8]),
       encoding=st.sampled_from(["utf-8", "utf-16", "gb18030", "big5", "latin-1"]))
def test_text_in_any_encoding(text: str, name: str, encoding: str) -> None:
    _check(text.encode(encoding, "replace"), name)
