"""Containers people use: Outlook .msg, RAR, single-file .gz/.bz2/.xz/.zst of anything.
Hostile versions (a .msg nesting messages without end, a directory cycle, a RAR bomb)
end in a status within the limits and leave the rest of the batch scanned."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import shutil
import sqlite3
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from leaksentry.config.extract import ExtractConfig
from pipelines.extract import detect


def _load_cfb():
    """The tests' .msg writer (modules here are imported by path, not as a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("extract_cfb", Path(__file__).with_name(
        "cfb.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cfb = _load_cfb()

RARS = Path(__file__).parent / "fixtures" / "rar"


def _csv(people) -> bytes:
    return ("name,hkid,hn\n" + "".join(f"{p.name},{p.hkid},{p.hn}\n" for p in people)).encode()


# -- single-file compression ---------------------------------------------------------------

def _zstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=3).compress(data)


@pytest.mark.parametrize(("suffix", "pack"), [(".gz", gzip.compress), (".bz2", bz2.compress),
                                              (".xz", lzma.compress), (".zst", _zstd)])
def test_single_file_compression_of_anything(ext, people, tmp_path, suffix, pack):
    db = tmp_path / "his.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE p (name TEXT, hkid TEXT, hn TEXT)")
    conn.executemany("INSERT INTO p VALUES (?,?,?)", [(p.name, p.hkid, p.hn) for p in people])
    conn.commit()
    conn.close()
    for inner, data in (("his.db", db.read_bytes()), ("export.csv", _csv(people))):
        r = ext.run(pack(data), inner + suffix)
        assert r.status == "ok", (suffix, r.ex.error)
        r.assert_all_found(people)
        loc = r.where(people[0].hkid)[0].location
        assert loc == (f"{inner}{suffix}/his.db/p" if inner == "his.db"
                       else f"{inner}{suffix}/export.csv")


def test_zstd_bomb_stops_at_the_limit(ext):
    bomb = _zstd(b"\x00" * (64 << 20))
    assert len(bomb) < 10_000
    r = ext.run(bomb, "zeros.bin.zst", ExtractConfig(max_expanded_bytes=8 << 20,
                                                     ratio_floor_bytes=1 << 20))
    assert r.status == "too_large"


def test_damaged_zstd_is_corrupt(ext, people):
    data = _zstd(_csv(people) * 50)
    r = ext.run(data[:8] + b"\xff" * 200, "x.csv.zst")
    assert r.status == "corrupt"


# -- RAR ----------------------------------------------------------------------------------

def rar3_stored(members: dict[str, bytes], claimed_size: int | None = None) -> bytes:
    """A RAR 2.9 archive of stored (method 0x30) members, to the published format (no
    free program writes RAR; rarfile reads stored members itself)."""
    def block(head_type: int, flags: int, body: bytes) -> bytes:
        rest = struct.pack("<BHH", head_type, flags, 7 + len(body)) + body
        return struct.pack("<H", zlib.crc32(rest) & 0xFFFF) + rest

    out = b"Rar!\x1a\x07\x00" + block(0x73, 0, b"\x00" * 6)
    for name, data in members.items():
        raw = name.encode()
        body = struct.pack("<IIBIIBBHI", len(data), claimed_size or len(data), 3,
                           zlib.crc32(data), 0x3C000000, 29, 0x30, len(raw), 0o100644) + raw
        out += block(0x74, 0x8000, body) + data
    return out + block(0x7B, 0x4000, b"")


def test_rar_members_found_with_their_paths(ext, people):
    data = rar3_stored({"export/patients.csv": _csv(people), "readme.txt": b"hello"})
    assert detect(data, "") == "rar"
    r = ext.run(data, "backup.rar")
    assert r.status == "ok" and r.ex.skipped == []
    r.assert_all_found(people)
    assert r.where(people[0].hkid)[0].location == "backup.rar/export/patients.csv"
    assert r.where(people[0].hkid)[0].row == 2


@pytest.mark.skipif(not shutil.which("bsdtar"), reason="bsdtar not installed")
def test_real_rar_compressed_member_read_through_bsdtar(ext):
    """seektest.rar (made by RAR): one compressed member (bsdtar), one stored."""
    r = ext.run((RARS / "seektest.rar").read_bytes(), "seektest.rar")
    assert r.status == "ok" and r.ex.skipped == []
    text = "".join(p.string for p in r.parts)
    assert text.count("\n") >= 2 * 512 and "511" in text  # both 2048-byte members


@pytest.mark.skipif(not shutil.which("bsdtar"), reason="bsdtar not installed")
def test_rar_bomb_is_bounded_by_the_expanded_bytes_limit(ext):
    """Compressed output is charged as the tool writes it: with a limit below what the
    members expand to, the archive stops at too_large (then the tool is killed)."""
    r = ext.run((RARS / "seektest.rar").read_bytes(), "bomb.rar",
                ExtractConfig(max_expanded_bytes=1500, ratio_floor_bytes=0))
    assert r.status == "too_large"
    # a header that claims 4 GB for a stored member changes nothing: bytes are counted
    r = ext.run(rar3_stored({"a.txt": b"x" * 100}, claimed_size=0xFFFFFFF0), "lie.rar")
    assert r.status in ("ok", "corrupt")


def test_encrypted_rar_is_encrypted_and_listed(ext, people):
    for name in ("rar5-psw.rar", "rar5-hpsw.rar", "rar3-comment-hpsw.rar"):
        r = ext.run((RARS / name).read_bytes(), name)
        assert r.status == "encrypted", name
        assert r.parts == []
    r = ext.run((RARS / "rar5-psw.rar").read_bytes(), "locked.rar")
    assert [s.status for s in r.ex.skipped] == ["encrypted", "encrypted"]
    assert r.ex.details["encrypted_members"] == ["locked.rar/stest1.txt",
                                                 "locked.rar/stest2.txt"]


def test_rar_batch_with_hostile_members(ext, people):
    """Solid (unreadable by bsdtar), truncated, encrypted RARs and a readable CSV."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("solid.rar", (RARS / "rar3-solid.rar").read_bytes())
        zf.writestr("cut.rar", rar3_stored({"x.csv": _csv(people)})[:60])
        zf.writestr("locked.rar", (RARS / "rar5-psw.rar").read_bytes())
        zf.writestr("patients.csv", _csv(people))
    r = ext.run(buf.getvalue(), "batch.zip")
    r.assert_all_found(people)
    where = {s.where for s in r.ex.skipped}
    assert "batch.zip/cut.rar/x.csv" in where  # listed, its data cut off
    assert "batch.zip/locked.rar/stest1.txt" in where
    assert any(w.startswith("batch.zip/solid.rar/") for w in where)


# -- Outlook .msg -------------------------------------------------------------------------

def test_msg_body_attachments_and_embedded_message(ext, people):
    inner = cfb.msg("FW: list", f"see {people[2].hkid} {people[2].hn}",
                    [("more.csv", _csv(people[6:]))], embedded=True)
    data = cfb.msg_file(f"Patients {people[0].hkid}", f"{people[1].name} {people[1].hkid} "
                        f"{people[1].hn}", [("list.csv", _csv(people[:6])), ("fwd.msg", inner)])
    assert detect(data, "") == "msg"
    r = ext.run(data, "mail.msg")
    assert r.status == "ok" and r.ex.skipped == []
    r.assert_all_found(people)
    assert r.where(people[1].hkid)[0].location == "body"
    assert r.where(people[0].hkid)[0].location == "headers"
    assert r.where(people[7].hkid)[0].location == "mail.msg/fwd.msg/more.csv"
    assert r.where(people[3].hkid)[0].location == "mail.msg/list.csv"
    ext.no_identifiers(r.outputs(), people)


def test_msg_nesting_without_end_is_bounded_by_the_depth_limit(ext, people):
    tree = cfb.msg("bottom", f"{people[0].hkid}", embedded=True)
    for i in range(12):
        tree = cfb.msg(f"level {i}", "fwd", [(f"fwd{i}.msg", tree)], embedded=True)
    data = cfb.msg_file("top", "fwd", [("fwd.msg", tree)])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("deep.msg", data)
        zf.writestr("patients.csv", _csv(people))
    r = ext.run(buf.getvalue(), "batch.zip", ExtractConfig(max_depth=5))
    r.assert_all_found(people)  # the CSV beside it
    assert r.status == "too_large"
    assert [s.status for s in r.ex.skipped] == ["too_large"]


def test_msg_whose_directory_contains_itself_is_corrupt(ext, people):
    data = bytearray(cfb.msg_file("loop", "body", [("a.csv", b"a,b\n")]))
    # point the attachment storage's child back at the root entry: a directory cycle
    dir_start = struct.unpack_from("<I", data, 48)[0]
    base = 512 + dir_start * 512
    for i in range(32):
        entry = base + i * 128
        name = data[entry:entry + 64].decode("utf-16-le", "ignore").rstrip("\x00")
        if name.startswith("__attach_version1.0_"):
            struct.pack_into("<I", data, entry + 76, 0)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("loop.msg", bytes(data))
        zf.writestr("patients.csv", _csv(people))
    r = ext.run(buf.getvalue(), "batch.zip")
    r.assert_all_found(people)
    assert r.status in ("corrupt", "too_large")
    assert [s.where for s in r.ex.skipped] == ["batch.zip/loop.msg"]


def test_msg_with_a_damaged_attachment_lists_it_and_reads_the_rest(ext, people):
    tree = cfb.msg("s", "body", [("a.csv", _csv(people[:6])), ("b.csv", _csv(people[6:]))])
    del tree["__nameid_version1.0"]  # off the standard: read anyway
    att = tree["__attach_version1.0_#00000000"]
    att["__properties_version1.0"] = b"\x00" * 3  # truncated property stream
    del att["__substg1.0_37010102"]
    r = ext.run(cfb.cfb(tree), "m.msg")
    for p in people[6:]:
        assert r.where(p.hkid), p.ref
    assert [s.where for s in r.ex.skipped] == ["m.msg/a.csv"]
    assert r.ex.skipped[0].status in ("unsupported", "corrupt")
