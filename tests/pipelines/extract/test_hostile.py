"""Hostile and broken inputs: each gets a status within the time limit and bounded
memory, nothing is written to disk, and no status, error or detail quotes content."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import zipfile
import zlib

from leaksentry.config.extract import ExtractConfig

MiB = 1024 * 1024


def _zeros_deflated(size: int) -> bytes:
    """A raw deflate stream of ``size`` zero bytes, built in chunks (never all in memory)."""
    c = zlib.compressobj(1, zlib.DEFLATED, -15)
    block = bytes(MiB)
    out = [c.compress(block) for _ in range(size // MiB)]
    out.append(c.flush())
    return b"".join(out)


def _zip_with_deflated(name: str, raw: bytes, size: int, crc: int) -> bytes:
    """A one-member zip whose deflated data is given (so a bomb costs no time to build)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, b"")  # placeholder entry, rewritten below
    # build by hand: local header + data + central directory
    import struct
    fn = name.encode()
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(raw), size,
                        len(fn), 0) + fn
    central = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc,
                          len(raw), size, len(fn), 0, 0, 0, 0, 0, 0) + fn
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central),
                      len(local) + len(raw), 0)
    return local + raw + central + end


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for k, v in members.items():
            zf.writestr(k, v)
    return buf.getvalue()


def _csv(ext, people) -> bytes:
    buf = io.StringIO()
    csv.writer(buf).writerows(ext.table(people))
    return buf.getvalue().encode()


def test_zip_bomb(ext):
    size = 256 * MiB
    bomb = _zip_with_deflated("zeros.csv", _zeros_deflated(size), size, 0)
    assert len(bomb) < 2 * MiB
    r = ext.run(bomb, "bomb.zip")
    assert r.status == "too_large"
    assert "bomb.zip/zeros.csv" in r.ex.error and "expan" in r.ex.error
    assert r.ex.details["expanded_bytes"] <= ExtractConfig().max_expansion_ratio * len(bomb) \
        + 2 * MiB


def test_nested_zip_bomb_42_style(ext):
    level = _zip({"0.bin": bytes(8 * MiB)})
    for depth in range(3):  # 16^3 copies of 8 MiB: 32 GiB if fully expanded
        level = _zip({f"{depth}-{i}.zip": level for i in range(16)})
    r = ext.run(level, "42.zip")
    assert r.status == "too_large"
    assert r.ex.details["expanded_bytes"] < 400 * MiB


def test_nested_zip_depth_limit(ext, people):
    level = _csv(ext, people)
    name = "p.csv"
    for i in range(4):
        level = _zip({name: level})
        name = f"l{i}.zip"
    r = ext.run(level, "deep.zip", ExtractConfig(max_depth=2))
    assert r.status == "too_large" and "nested deeper than 2" in r.ex.error
    assert not r.parts


def test_gzip_bomb(ext):
    raw = _zeros_deflated(256 * MiB)
    bomb = gzip.compress(b"")[:10] + raw + bytes(8)  # header, data, (bad) trailer
    r = ext.run(bomb, "logs.txt.gz")
    assert r.status == "too_large" and "logs.txt.gz" in r.ex.error
    # stopped at the ratio limit (200 x the input), one read chunk at most beyond it
    assert r.ex.details["expanded_bytes"] <= 200 * len(bomb) + MiB


def test_member_limit(ext):
    data = _zip({f"f{i}.txt": b"x" for i in range(50)})
    r = ext.run(data, "many.zip", ExtractConfig(max_members=10))
    assert r.status == "too_large" and "more than 10 archive members" in r.ex.error


def test_parts_limit_keeps_what_was_read(ext, people):
    r = ext.run(_csv(ext, people), "p.csv", ExtractConfig(max_parts=5))
    assert r.status == "too_large" and len(r.parts) == 5


def test_input_limit(ext):
    r = ext.run(b"a" * 2048, "big.txt", ExtractConfig(max_input_bytes=1024))
    assert r.status == "too_large" and not r.parts and "big.txt" in r.ex.error


def test_path_traversal_names_are_labels_only(ext, people, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    data = _zip({"../../evil.csv": _csv(ext, people[:6]), "/etc/cron.d/x.csv":
                 _csv(ext, people[6:]), "..\\..\\win.csv": b"a,b\n"})
    r = ext.run(data, "slip.zip")
    assert r.status == "ok"
    r.assert_all_found(people)
    assert r.where(people[0].hkid)[0].location == "slip.zip/../../evil.csv"
    assert not list(tmp_path.rglob("*.csv"))  # nothing extracted to the filesystem
    assert not os.path.exists("/etc/cron.d/x.csv")


def test_encrypted_zip_lists_masked_member_names(ext, people):
    import pyzipper

    buf = io.BytesIO()
    with pyzipper.AESZipFile(buf, "w", encryption=pyzipper.WZ_AES) as zf:
        zf.setpassword(b"unguessable")
        zf.writestr("export/patients.csv", _csv(ext, people))
        zf.writestr(f"scans/{people[0].hkid}.pdf", b"%PDF-1.4")
    r = ext.run(buf.getvalue(), "locked.zip")
    assert r.status == "encrypted" and "2 ZIP members are encrypted" in r.ex.error
    assert "locked.zip/export/patients.csv" in r.ex.details["encrypted_members"]
    assert len(r.ex.details["encrypted_members"]) == 2
    ext.no_identifiers(r.outputs(), people)


def test_encrypted_pdf(ext, people):
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, encrypt="open-sesame")
    c.drawString(50, 800, f"{people[0].hkid} {people[0].hn}")
    c.save()
    r = ext.run(buf.getvalue(), "report.pdf")
    assert r.status == "encrypted" and "password-protected" in r.ex.error
    opened = ext.run(buf.getvalue(), "report.pdf", passwords=("open-sesame",))
    assert opened.status == "ok"
    opened.assert_all_found(people[:1])


def test_truncated_xlsx(ext, people):
    import xlsxwriter

    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True})
    ws = wb.add_worksheet()
    for i, row in enumerate(ext.table(people) * 50):
        ws.write_row(i, 0, row)
    wb.close()
    data = buf.getvalue()
    r = ext.run(data[: len(data) // 2], "cut.xlsx")
    assert r.status == "corrupt"
    assert r.ex.error.startswith("cut.xlsx: ")
    ext.no_identifiers(r.outputs(), people)


def test_random_bytes_with_pdf_header(ext):
    r = ext.run(b"%PDF-1.7\n" + os.urandom(64 * 1024), "fake.pdf")
    assert r.status == "corrupt" and r.ex.details["type"] == "pdf"


def test_zero_byte_file(ext):
    r = ext.run(b"", "empty.csv")
    assert r.status == "ok" and r.parts == [] and r.ex.details["type"] == "empty"


def test_nul_filled_100mb_line(ext, people):
    data = b"header\n" + bytes(100 * MiB) + f"\n{people[0].hkid} {people[0].hn}\n".encode()
    r = ext.run(data, "nul.txt")
    assert r.status == "ok"
    r.assert_all_found(people[:1])


def test_deeply_nested_json(ext):
    r = ext.run(b"[" * 200_000 + b"]" * 200_000, "deep.json")
    assert r.status == "corrupt" and "nested too deeply" in r.ex.error
    r = ext.run(b'{"a":' * 50_000 + b"1" + b"}" * 50_000)
    assert r.status == "corrupt"


def test_truncated_gzip_keeps_what_was_read(ext, people):
    data = gzip.compress(_csv(ext, people) * 20)
    r = ext.run(data[: len(data) * 3 // 4], "p.csv.gz")
    assert r.status == "corrupt" and "truncated" in r.ex.error
    assert r.parts  # what could be read was read


def test_corrupt_csv_error_does_not_quote_the_row(ext, people):
    rows = ext.table(people)
    rows[3][4] = "x" * 500 + people[2].hkid  # a field over the (lowered) limit
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    old = csv.field_size_limit(200)
    try:
        r = ext.run(buf.getvalue().encode(), "p.csv")
    finally:
        csv.field_size_limit(old)
    assert r.status == "corrupt" and "CSV unreadable after row 3" in r.ex.error
    assert len(r.parts) == 3
    ext.no_identifiers(r.outputs(), people)


def test_xml_error_does_not_quote_identifiers(ext, people):
    data = f"<r><{people[0].hkid}>x</{people[1].hkid}></r>".encode()
    r = ext.run(data, "x.xml")
    assert r.status == "corrupt"
    ext.no_identifiers(r.outputs(), people)


def test_file_named_after_an_identifier_is_masked_in_messages(ext, people):
    r = ext.run(b"\x89PNG\r\n\x1a\n" + bytes(64), f"{people[0].hkid}.png")
    assert r.status == "corrupt"  # a PNG (OCR'd when whole) with a broken header
    ext.no_identifiers(r.outputs(), people)


def test_members_named_after_identifiers_are_masked_in_locations(ext, people):
    p = people[0]
    data = _zip({f"{p.hkid}/{p.hn}.csv": _csv(ext, people),
                 f"{people[1].hkid[:-1]}({people[1].hkid[-1]}).zip": b"PK\x03\x04broken"})
    r = ext.run(data, f"{people[2].hkid}.zip")
    r.assert_all_found(people)
    locations = " ".join(x.location for x in r.parts)
    assert locations.startswith(f"{people[2].hkid[:3]}*")
    ext.no_identifiers(locations + r.outputs(), people)


def test_cooperative_time_limit_keeps_partial_parts(ext):
    line = b"CHAN Ka Ming,M,A1234563,HN12345678A,Appendicectomy\n"
    data = line * (40 * MiB // len(line))
    ex_cfg = ExtractConfig(time_limit=0.2)
    r = ext.run(data, "big.csv", ex_cfg)
    assert r.status == "timeout" and r.ex.error.startswith("big.csv: extraction stopped at")
    assert 0 < len(r.parts) < data.count(b"\n")


def test_every_status_message_is_free_of_identifiers(ext, people):
    """One corpus, every status: nothing the extractor says about a document quotes it."""
    rows = _csv(ext, people)
    bad_json = b'{"hkid": "' + people[0].hkid.encode() + b'", oops}'
    corpus = {
        "ok.csv": rows,
        "cut.zip": _zip({"p.csv": rows})[:-30],
        "bad.json": bad_json,
        "bad.pdf": b"%PDF-1.4\n" + rows,
        "bad.docx": _zip({"word/document.xml": rows}),
        "bad.7z": b"7z\xbc\xaf\x27\x1c" + rows,
        "bad.gz": b"\x1f\x8b\x08\x00" + rows,
        "bad.xlsx": _zip({"xl/workbook.xml": rows}),
        "bad.tar": rows.ljust(1024, b"\x00")[:257] + b"ustar" + rows,
        "bad.eml": b"From: a\nSubject: " + people[0].hkid.encode() + b"\n\n" + rows,
        "bad.rtf": b"{\\rtf1 " + rows,
        people[1].hkid + ".bin": b"\x00\x01\x02" + rows,
    }
    statuses = set()
    for name, data in corpus.items():
        r = ext.run(data, name, ExtractConfig(max_parts=3))
        statuses.add(r.status)
        ext.no_identifiers(r.outputs(), people)
    assert {"ok", "corrupt", "too_large"} <= statuses
    json.dumps(statuses, default=list)


def test_password_protected_office_document(ext):
    # no writer for encrypted OOXML is installed (msoffcrypto-tool would be): an OLE
    # compound file holding the "EncryptedPackage" stream name is what Office writes
    ole = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504) + "EncryptionInfo".encode("utf-16-le")
           + bytes(50) + "EncryptedPackage".encode("utf-16-le") + bytes(1000))
    r = ext.run(ole, "payroll.xlsx")
    assert r.status == "encrypted" and r.ex.details["type"] == "ooxml_encrypted"
    assert "payroll.xlsx" in r.ex.error


def test_zip_claiming_millions_of_entries_is_not_parsed(ext):
    data = _zip({f"{i}.txt": b"" for i in range(3)})
    # rewrite the end-of-central-directory counts to 65,000 entries
    i = data.rfind(b"PK\x05\x06")
    data = data[: i + 8] + (65000).to_bytes(2, "little") * 2 + data[i + 12:]
    r = ext.run(data, "many.zip", ExtractConfig(max_members=100))
    assert r.status == "too_large" and "far over the limit" in r.ex.error


def test_seven_zip_bomb(ext):
    import py7zr

    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as sz:
        sz.writestr(bytes(20 * MiB), "zeros.csv")
    r = ext.run(buf.getvalue(), "bomb.7z", ExtractConfig(max_expanded_bytes=4 * MiB))
    assert r.status == "too_large" and "bomb.7z" in r.ex.error
    assert not r.parts
