"""A small writer of OLE compound files (MS-CFB version 3) and Outlook .msg files.

No program that writes .msg runs here (Outlook does; extract-msg and olefile only read),
so the tests build them to the published formats: [MS-CFB] for the container and
[MS-OXMSG] for the message (property streams, recipients, attachments by value and
embedded messages). olefile and extract-msg, the readers the scanner uses, read them.
"""

from __future__ import annotations

import itertools
import struct
from typing import Union

Tree = dict[str, Union[bytes, "Tree"]]

_FREE, _END, _FATSECT, _NOSTREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF
_SECTOR, _MINI, _CUTOFF = 512, 64, 4096


def _pad(data: bytes, size: int) -> bytes:
    return data + b"\x00" * (-len(data) % size)


def cfb(tree: Tree) -> bytes:
    """The compound file holding ``tree`` (storage name -> dict, stream name -> bytes)."""
    entries: list[dict] = [{"name": "Root Entry", "type": 5, "kids": [], "data": b""}]

    def add(t: Tree, parent: int) -> None:
        for name, value in t.items():
            idx = len(entries)
            entries.append({"name": name, "type": 1 if isinstance(value, dict) else 2,
                            "kids": [], "data": value if isinstance(value, bytes) else b""})
            entries[parent]["kids"].append(idx)
            if isinstance(value, dict):
                add(value, idx)

    add(tree, 0)
    # streams under the cutoff live in the mini stream, the rest in regular sectors
    mini = bytearray()
    minifat: list[int] = []
    for e in entries[1:]:
        if e["type"] == 2 and len(e["data"]) < _CUTOFF:
            e["start"] = len(mini) // _MINI if e["data"] else _END
            n = -(-len(e["data"]) // _MINI)
            minifat += [len(minifat) + i + 1 for i in range(n - 1)] + ([_END] if n else [])
            mini += _pad(e["data"], _MINI)
    sectors: list[bytes] = []
    fat: list[int] = []

    def place(data: bytes) -> int:
        if not data:
            return _END
        start = len(sectors)
        chunk = _pad(data, _SECTOR)
        n = len(chunk) // _SECTOR
        sectors.extend(chunk[i * _SECTOR:(i + 1) * _SECTOR] for i in range(n))
        fat.extend([start + i + 1 for i in range(n - 1)] + [_END])
        return start

    for e in entries[1:]:
        if e["type"] == 2 and len(e["data"]) >= _CUTOFF:
            e["start"] = place(e["data"])
    entries[0]["start"] = place(bytes(mini))
    entries[0]["size"] = len(mini)
    minifat_start = place(b"".join(struct.pack("<I", x) for x in minifat)) if minifat else _END
    minifat_sectors = -(-len(minifat) * 4 // _SECTOR)
    # siblings as a right-leaning chain (readers do not require a balanced tree)
    for e in entries:
        kids = e["kids"]
        e["child"] = kids[0] if kids else _NOSTREAM
        for a, b in itertools.pairwise(kids):
            entries[a]["right"] = b
    dir_bytes = bytearray()
    for e in entries:
        name = e["name"].encode("utf-16-le") + b"\x00\x00"
        size = e.get("size", len(e["data"]))
        dir_bytes += struct.pack("<64sHBBIII16sIQQIQ", name, len(name), e["type"], 1,
                                 _NOSTREAM, e.get("right", _NOSTREAM), e["child"], b"",
                                 0, 0, 0, e.get("start", _END) if e["type"] != 1 else 0,
                                 size)
    dir_start = place(_pad(bytes(dir_bytes), _SECTOR))
    n_fat = 1
    while len(sectors) + n_fat > n_fat * (_SECTOR // 4):
        n_fat += 1
    fat_start = len(sectors)
    fat += [_FATSECT] * n_fat
    fat += [_FREE] * (n_fat * (_SECTOR // 4) - len(fat))
    fat_bytes = b"".join(struct.pack("<I", x) for x in fat)
    sectors.extend(fat_bytes[i * _SECTOR:(i + 1) * _SECTOR] for i in range(n_fat))
    difat = [fat_start + i for i in range(n_fat)] + [_FREE] * (109 - n_fat)
    header = struct.pack("<8s16sHHHHH6sIIIIIIIII", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", b"",
                         0x3E, 3, 0xFFFE, 9, 6, b"", 0, n_fat, dir_start, 0, _CUTOFF,
                         minifat_start, minifat_sectors, _END, 0)
    header += b"".join(struct.pack("<I", x) for x in difat)
    return header + b"".join(sectors)


# -- Outlook .msg ([MS-OXMSG]) -------------------------------------------------------------

def _string(prop: int) -> str:
    return f"__substg1.0_{prop:04X}001F"


def _props(kind: str, fixed: list[tuple[int, int, int]], counts: tuple = ()) -> bytes:
    """A property stream: header (top-level 32 bytes, embedded 24, else 8) + 16-byte
    entries (tag, flags, value) for fixed-size properties."""
    head = {"top": 32, "embedded": 24}.get(kind, 8)
    out = bytearray(head)
    if kind in ("top", "embedded"):
        struct.pack_into("<II", out, 8, *(counts or (1, 1)))
        struct.pack_into("<II", out, 16, *(counts or (1, 1)))
    for tag, ptype, value in fixed:
        out += struct.pack("<IIQ", (tag << 16) | ptype, 6, value)
    return bytes(out)


def msg(subject: str, body: str, attachments: list[tuple[str, bytes | Tree]] = (),
        *, embedded: bool = False) -> Tree:
    """The storage tree of a message; an attachment whose content is a Tree is an
    embedded message (attach method 5)."""
    tree: Tree = {
        _string(0x0037): subject.encode("utf-16-le"),
        _string(0x1000): body.encode("utf-16-le"),
        "__substg1.0_001A001F": "IPM.Note".encode("utf-16-le"),
        "__properties_version1.0": _props("embedded" if embedded else "top", [],
                                          (0, len(attachments))),
    }
    if not embedded:
        tree["__nameid_version1.0"] = {"__substg1.0_00020102": b"",
                                       "__substg1.0_00030102": b"",
                                       "__substg1.0_00040102": b""}
    for i, (name, content) in enumerate(attachments):
        att: Tree = {_string(0x3707): name.encode("utf-16-le"),
                     _string(0x3001): name.encode("utf-16-le")}
        if isinstance(content, dict):
            att["__substg1.0_3701000D"] = content
            att["__properties_version1.0"] = _props("attach", [(0x3705, 0x0003, 5)])
        else:
            att["__substg1.0_37010102"] = content
            att["__properties_version1.0"] = _props("attach", [(0x3705, 0x0003, 1)])
        tree[f"__attach_version1.0_#{i:08X}"] = att
    return tree


def msg_file(subject: str, body: str, attachments: list[tuple[str, bytes | Tree]] = ()) -> bytes:
    return cfb(msg(subject, body, attachments))
