"""A streaming XLSX reader: the fallback for sheets the fast reader cannot take.

python-calamine builds a dense cell range per sheet, so one cell at XFD1048576 asks
for 16,384 x 1,048,576 cells and the process aborts (a Rust allocation failure is not
an exception). :func:`fits_calamine` reads the sheet's ``<dimension>`` (the first few
hundred bytes of its XML) to route such sheets here, where rows are parsed one at a
time with lxml (no entities, no DTD) and only the cells present are kept; each row's
text is charged to the expanded-bytes budget, so a sheet of far-apart cells ends at
``too_large``, never at the machine's memory.
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
from collections.abc import Iterator
from typing import IO

from lxml import etree

from pipelines.extract.archives import read_limited
from pipelines.extract.node import Node, safe_name
from pipelines.extract.state import State
from pipelines.extract.text import TableHeader, row_text
from pipelines.model import TextPart

#: cells calamine may allocate for one sheet (about 32 bytes each)
MAX_DENSE_CELLS = 8_000_000

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_C, _ROW, _V, _T, _IS, _SI, _RPH = (f"{{{_MAIN}}}{t}" for t in ("c", "row", "v", "t", "is",
                                                               "si", "rPh"))
_DIMENSION = re.compile(rb"<(?:\w+:)?dimension\s+ref=\"([A-Z]+)?(\d+)?(?::([A-Z]+)(\d+))?\"")
_REF = re.compile(r"([A-Z]+)(\d+)")


def _parse(fp: IO[bytes], tag: str) -> Iterator[etree._Element]:
    return (el for _ev, el in etree.iterparse(fp, events=("end",), tag=tag,
                                              resolve_entities=False, no_network=True,
                                              load_dtd=False, huge_tree=True))


def column_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n - 1


def sheet_paths(zf: zipfile.ZipFile) -> dict[str, str]:
    """Sheet name -> its XML member, from workbook.xml and its relationships."""
    rels: dict[str, str] = {}
    with zf.open("xl/_rels/workbook.xml.rels") as fp:
        for el in _parse(fp, f"{{{_PKG_REL}}}Relationship"):
            target = el.get("Target", "")
            rels[el.get("Id", "")] = target.lstrip("/") if target.startswith("/") else \
                posixpath.normpath(posixpath.join("xl", target))
    out: dict[str, str] = {}
    with zf.open("xl/workbook.xml") as fp:
        for el in _parse(fp, f"{{{_MAIN}}}sheet"):
            path = rels.get(el.get(f"{{{_REL}}}id", ""))
            if path:
                out[el.get("name", "")] = path
    return out


def fits_calamine(zf: zipfile.ZipFile, path: str) -> bool:
    """False when the sheet's declared extent would make calamine allocate more than
    MAX_DENSE_CELLS cells (or it declares none)."""
    try:
        with zf.open(path) as fp:
            head = fp.read(4096)
    except (KeyError, zipfile.BadZipFile, OSError, EOFError):
        return True  # calamine reports it
    m = _DIMENSION.search(head)
    if not m:
        return False
    c1, r1, c2, r2 = (g.decode("ascii") if g else None for g in m.groups())
    if not c2 or not r2:
        return True  # a single cell ("A1")
    rows = int(r2) - int(r1 or 1) + 1
    cols = column_index(c2) - column_index(c1 or "A") + 1
    return rows * cols <= MAX_DENSE_CELLS


def _shared_strings(zf: zipfile.ZipFile, state: State, where: str) -> list[str]:
    if "xl/sharedStrings.xml" not in zf.namelist():
        return []
    with zf.open("xl/sharedStrings.xml") as fp:
        raw = read_limited(fp, state, where)
    out: list[str] = []
    for si in _parse(io.BytesIO(raw), _SI):
        for ph in si.findall(_RPH):
            si.remove(ph)
        out.append("".join(si.itertext()))
        si.clear()
    return out


def _value(c: etree._Element, strings: list[str]) -> str:
    t = c.get("t")
    if t == "inlineStr":
        node = c.find(_IS)
        return "".join(node.itertext()) if node is not None else ""
    v = c.findtext(_V)
    if v is None:
        return ""
    if t == "s":
        try:
            return strings[int(v)]
        except (ValueError, IndexError):
            return ""
    if t in ("str", "e"):
        return v
    if t == "b":
        return "TRUE" if v == "1" else "FALSE"
    try:
        f = float(v)
    except ValueError:
        return v
    return str(int(f)) if f.is_integer() and abs(f) < 1e16 else repr(f)


def stream_sheet(zf: zipfile.ZipFile, path: str, strings: list[str], loc: str,
                 state: State) -> Iterator[TextPart]:
    """Rows of one sheet as record parts (row = the sheet's row number, cells from A)."""
    where = safe_name(loc)
    head = TableHeader()
    with zf.open(path) as fp:
        for n, row in enumerate(_parse(fp, _ROW), start=1):
            cells: dict[int, str] = {}
            for col, c in enumerate(row.iter(_C)):
                ref = _REF.match(c.get("r", ""))
                idx = column_index(ref.group(1)) if ref else col
                value = _value(c, strings)
                if value:
                    cells[idx] = value
            number = int(row.get("r") or n)
            row.clear()
            parent = row.getparent()
            while parent is not None and row.getprevious() is not None:
                del parent[0]
            if n % 4096 == 0:
                state.tick()
            if not cells:
                continue
            values = [""] * (max(cells) + 1)
            for i, v in cells.items():
                values[i] = v
            text = row_text(values)
            state.charge(len(text), where)
            yield TextPart(text, loc, number, head.header if head.done else head.see(values))


def stream_workbook(data: bytes, node: Node, state: State,
                    only: set[str] | None = None) -> Iterator[TextPart]:
    """Every sheet (or those named in ``only``) through the streaming reader."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        paths = sheet_paths(zf)
        strings = _shared_strings(zf, state, safe_name(node.label))
        for name, path in paths.items():
            if only is not None and name not in only:
                continue
            state.tick()
            yield from stream_sheet(zf, path, strings, node.at(name), state)
