"""File type detection: magic bytes first, the name second, then a look at the text."""

from __future__ import annotations

import io
import re
import struct
import zipfile

_MAGIC: list[tuple[bytes, int, str]] = [
    (b"%PDF-", -1, "pdf"),  # -1: anywhere in the first KiB
    (b"7z\xbc\xaf\x27\x1c", 0, "7z"),
    (b"\x1f\x8b", 0, "gzip"),
    (b"BZh", 0, "bzip2"),
    (b"\xfd7zXZ\x00", 0, "xz"),
    (b"{\\rtf", 0, "rtf"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 0, "ole"),
    (b"\x89PNG\r\n\x1a\n", 0, "png"),
    (b"\xff\xd8\xff", 0, "jpeg"),
    (b"GIF8", 0, "gif"),
    (b"II*\x00", 0, "tiff"),
    (b"MM\x00*", 0, "tiff"),
    (b"RIFF", 0, "riff"),
    (b"\x7fELF", 0, "elf"),
    (b"MZ", 0, "exe"),
    (b"Rar!\x1a\x07", 0, "rar"),
    (b"\x28\xb5\x2f\xfd", 0, "zstd"),
    (b"SQLite format 3\x00", 0, "sqlite"),
    (b"Standard Jet DB\x00", 4, "access"),  # Microsoft Access .mdb (Jet 3/4)
    (b"Standard ACE DB\x00", 4, "access"),  # .accdb (ACE 12+)
    (b"OggS", 0, "ogg"),
    (b"ID3", 0, "mp3"),
    (b"\x00\x00\x00", 0, "binary"),  # e.g. mp4 "ftyp" boxes; checked after UTF-16/32 BOMs
]

_BY_EXT = {
    "csv": "csv", "tsv": "tsv", "tab": "tsv", "json": "json", "ndjson": "ndjson",
    "jsonl": "ndjson", "xml": "xml", "html": "html", "htm": "html", "xhtml": "html",
    "eml": "eml", "msg_txt": "eml", "txt": "text", "log": "text", "sql": "text", "md": "text",
    "xlsx": "xlsx", "xlsm": "xlsx", "xlsb": "xlsb", "xls": "xls", "ods": "ods",
    "docx": "docx", "pptx": "pptx", "rtf": "rtf", "pdf": "pdf", "zip": "zip",
    "7z": "7z", "tar": "tar", "gz": "gzip", "tgz": "gzip", "bz2": "bzip2", "xz": "xz",
}

_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_EML_HEADER = re.compile(
    rb"^(?:Received|From|To|Subject|Date|Message-ID|MIME-Version|Return-Path|Delivered-To"
    rb"|Content-Type|X-[A-Za-z-]+):[ \t]", re.I)
_HTML = re.compile(rb"<(?:!doctype\s+html|html|head|body|div|p|table|script|meta|title)[\s>/]",
                   re.I)


def extension(name: str) -> str:
    base = name.rsplit("/", 1)[-1].split("?", 1)[0]
    return base.rsplit(".", 1)[-1].lower() if "." in base else ""


def zip_entries(data: bytes) -> int | None:
    """The entry count the end-of-central-directory record claims (None if unknown)."""
    tail = data[-(0xFFFF + 22):]
    i = tail.rfind(b"PK\x05\x06")
    if i < 0 or i + 22 > len(tail):
        return None
    (total,) = struct.unpack_from("<H", tail, i + 10)
    return None if total == 0xFFFF else total


def _zip_kind(data: bytes) -> str:
    if (zip_entries(data) or 0) > 50_000:
        return "zip"  # not an Office file; the zip handler applies the member limit
    try:
        names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    except Exception:
        return "zip"  # damaged: the zip handler reports it
    if "xl/workbook.xml" in names:
        return "xlsx"
    if "xl/workbook.bin" in names:
        return "xlsb"
    if "word/document.xml" in names:
        return "docx"
    if "ppt/presentation.xml" in names:
        return "pptx"
    if "mimetype" in names:
        return _odf_kind(data) or "zip"
    return "zip"


#: OpenDocument mimetype member -> kind (templates read like the documents)
_ODF = {"application/vnd.oasis.opendocument.spreadsheet": "ods",
        "application/vnd.oasis.opendocument.text": "odt",
        "application/vnd.oasis.opendocument.presentation": "odp",
        "application/vnd.oasis.opendocument.graphics": "odg"}


def _odf_kind(data: bytes) -> str | None:
    """The OpenDocument type its ``mimetype`` member names (not "it is a zip")."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf, zf.open("mimetype") as fp:
            mime = fp.read(200).decode("ascii", "replace").strip()
    except Exception:
        return None
    return _ODF.get(mime.removesuffix("-template"))


def _ole_streams(data: bytes) -> set[str] | None:
    """Names of the OLE compound file's top-level streams (None if olefile cannot parse)."""
    import olefile  # 7 ms, for OLE files only: detect runs on every document (start-up)

    try:
        with olefile.OleFileIO(data) as ole:
            return {path[0] for path in ole.listdir(streams=True, storages=True)}
    except Exception:
        return None


def _ole_kind(data: bytes) -> str:
    """Word/Excel/PowerPoint 97-2003, Outlook .msg, encrypted OOXML: by the streams
    olefile lists; a byte search only where olefile cannot parse the directory."""
    streams = _ole_streams(data)
    if streams is not None:
        if "EncryptedPackage" in streams:
            return "ooxml_encrypted"
        if "WordDocument" in streams:
            return "doc"
        if "Workbook" in streams or "Book" in streams:
            return "xls"
        if "PowerPoint Document" in streams:
            return "ppt"
        if "__properties_version1.0" in streams or any(
                n.startswith("__substg1.0_") for n in streams):
            return "msg"
        return "ole"
    if "EncryptedPackage".encode("utf-16-le") in data[:1 << 20] or \
            "EncryptionInfo".encode("utf-16-le") in data[:1 << 20]:
        return "ooxml_encrypted"
    head = data[:1 << 20]
    if "Workbook".encode("utf-16-le") in head or "Book".encode("utf-16-le") in head:
        return "xls"
    if "WordDocument".encode("utf-16-le") in head:
        return "doc"
    if "PowerPoint Document".encode("utf-16-le") in head:
        return "ppt"
    return "ole"


_CONTROLS = bytes(b for b in range(32) if b < 9 or 13 < b < 32)


def _looks_binary(head: bytes) -> bool:
    if not head or head.startswith(_BOMS):
        return False
    # UTF-16 without BOM: NULs on every other byte
    if len(head) >= 8 and (head[1::2].count(0) > len(head) // 4 or
                           head[0::2].count(0) > len(head) // 4):
        odd, even = head[1::2].count(0), head[0::2].count(0)
        if min(odd, even) < len(head) // 50:  # one side only: UTF-16 text
            return False
    if b"\x00" * 64 in head:
        head = head.replace(b"\x00", b"")  # NUL-padded text: judge what is left
        if not head:
            return False
    controls = len(head) - len(head.translate(None, _CONTROLS))
    return controls > len(head) * 0.1


def _text_kind(data: bytes, ext: str) -> str:
    head = data[:4096]
    for bom in _BOMS:
        if head.startswith(bom):
            head = head[len(bom):]
            break
    stripped = head.lstrip().replace(b"\x00", b"")
    if ext in {"csv", "tsv", "json", "ndjson", "xml", "html", "eml"}:
        return _BY_EXT[ext]
    if stripped[:1] in (b"{", b"["):
        first = stripped.split(b"\n", 1)[0].strip()
        if stripped[:1] == b"{" and first.endswith(b"}") and b"\n{" in stripped:
            return "ndjson"
        return "json"
    if _HTML.search(stripped[:2048]):
        return "html"
    if stripped.startswith(b"<?xml") or (stripped.startswith(b"<") and stripped[1:2].isalpha()):
        return "xml"
    lines = stripped.split(b"\n", 12)
    if sum(1 for ln in lines[:8] if _EML_HEADER.match(ln)) >= 2 and \
            re.search(rb"^(?:From|Subject|MIME-Version|Received):", stripped, re.M | re.I):
        return "eml"
    if ext and ext in _BY_EXT and _BY_EXT[ext] == "text":
        return "text"
    return "text"


# BMP: "BM", then a DIB header whose size is one of the known versions
_BMP_DIB_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})


def _image_kind(data: bytes) -> str | None:
    """WebP and BMP, whose magic alone ("RIFF", "BM") says too little."""
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(b"BM") and len(data) >= 26 and \
            int.from_bytes(data[14:18], "little") in _BMP_DIB_SIZES:
        return "bmp"
    return None


def detect(data: bytes, name: str = "") -> str:
    """A short type name: "xlsx", "csv", "zip", "text", ..., or e.g. "png" (unsupported)."""
    ext = extension(name)
    head = data[:1024]
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return _zip_kind(data)
    if image := _image_kind(data):
        return image
    for magic, offset, kind in _MAGIC:
        if offset == -1:
            if magic in head:
                return kind
        elif data.startswith(magic, offset):
            if kind == "binary" and (data.startswith(b"\x00\x00\xfe\xff") or
                                     not _looks_binary(data[:4096])):
                continue
            return _ole_kind(data) if kind == "ole" else kind
    if len(data) > 262 and data[257:262] == b"ustar":
        return "tar"
    if ext == "tar" and len(data) >= 512 and data[:1] not in b"\x00":
        return "tar"
    if _looks_binary(data[:4096]):
        return "binary"
    return _text_kind(data, ext)
