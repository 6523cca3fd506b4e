"""Text formats: plain text in any common encoding, CSV/TSV, HTML, JSON, NDJSON, XML.

Decoding is streamed (a TextIOWrapper over the bytes), so a 200 MB CSV is
read row by row and plain text is cut into line-aligned chunks.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.extract.encoded import embedded
from pipelines.extract.node import Node, mask_name
from pipelines.extract.state import Failed, State, reason
from pipelines.model import CELL_SEP, TextPart

if TYPE_CHECKING:
    from lxml import etree

csv.field_size_limit(64 * 1024 * 1024)

_SAMPLE = 64 * 1024
_NULS = re.compile("\x00+")
_NULS_B = re.compile(b"\x00+")
_BOMS = [(codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16")]


def sniff_encoding(data: bytes) -> str:
    """BOM, else strict UTF-8 on a sample, else charset-normalizer's best guess."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            return enc
    sample = data[:_SAMPLE]
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as e:
        if e.start >= len(sample) - 3 and len(data) > len(sample):
            return "utf-8"  # the sample cut a character in two
    if len(sample) >= 8:
        odd, even = sample[1::2].count(0), sample[0::2].count(0)
        if odd > len(sample) // 4 and even < len(sample) // 50:
            return "utf-16-le"
        if even > len(sample) // 4 and odd < len(sample) // 50:
            return "utf-16-be"
    import charset_normalizer  # deferred for start-up: UTF-8 text (most) never needs it

    results = charset_normalizer.from_bytes(sample)
    best = results.best()
    if best is None or not best.encoding:
        return "cp1252"
    if best.encoding.startswith(("cp125", "iso8859", "latin", "mac_")):
        # short Western samples are ambiguous between single-byte code pages: prefer the
        # common one (Windows-1252, a superset of Latin-1) when it reads as cleanly
        for m in results:
            if m.encoding in ("cp1252", "latin_1") and m.chaos <= best.chaos + 0.02:
                return "cp1252"
    return {"ascii": "utf-8"}.get(best.encoding, best.encoding)


def open_text(data: bytes, state: State) -> io.TextIOWrapper:
    enc = sniff_encoding(data)
    state.details.setdefault("encoding", enc)
    return io.TextIOWrapper(io.BytesIO(data), encoding=enc, errors="replace", newline="")


def decode(data: bytes, state: State) -> str:
    return open_text(data, state).read()


# -- plain text ---------------------------------------------------------------------------

def text_chunks(stream: io.TextIOBase, size: int, state: State) -> Iterator[tuple[int, str]]:
    """(first line number, chunk), chunks cut after a line end (or a space, for a
    giant line) so an identifier is not split between two parts."""
    line, carry = 1, ""
    while block := stream.read(size):
        state.tick()
        buf = carry + block
        cut = buf.rfind("\n") + 1
        if cut <= 0 and len(buf) >= size:
            cut = buf.rfind(" ", len(buf) - 256) + 1 or len(buf)
        if cut <= 0:
            carry = buf
            continue
        chunk, carry = buf[:cut], buf[cut:]
        yield line, chunk
        line += chunk.count("\n")
    if carry:
        yield line, carry


_NL_BLOCK = 1 << 20


def count_newlines(data: bytes, start: int = 0, end: int | None = None) -> int:
    """``data.count(b"\\n", start, end)`` in a third of the time on a large text (100 MB:
    17 ms instead of 50): numpy compares a block at a time into a buffer it reuses, where
    ``bytes.count`` looks at one byte at a time."""
    end = len(data) if end is None else min(end, len(data))
    if start < 0 or end - start < _NL_BLOCK:
        return data.count(b"\n", start, end)
    view = np.frombuffer(data, dtype=np.uint8)
    hits = np.empty(_NL_BLOCK, dtype=bool)
    total = 0
    for a in range(start, end, _NL_BLOCK):
        b = min(a + _NL_BLOCK, end)
        out = hits[:b - a]
        np.equal(view[a:b], 10, out=out)
        total += int(np.count_nonzero(out))
    return total


def chunk_end(data: bytes, pos: int, size: int) -> int:
    """Where :func:`byte_chunks` ends the chunk starting at ``pos``: after a line end,
    else after a space, else at a character boundary. A chunk's end depends on its start
    only, so the chunks of ``data[end:]`` are those of ``data`` from ``end`` on."""
    n = len(data)
    end = min(n, pos + size)
    if end < n:
        cut = data.rfind(b"\n", pos, end) + 1
        if cut <= pos:
            cut = data.rfind(b" ", max(pos, end - 256), end) + 1
        if cut <= pos:
            cut = end
            while cut > pos and 0x80 <= data[cut] < 0xC0:
                cut -= 1  # not inside a multi-byte character
            cut = cut if cut > pos else end
        end = cut
    return end


def byte_chunks(data: bytes, size: int, state: State, line: int = 1, pos: int = 0
                ) -> Iterator[tuple[int, bytes]]:
    """:func:`text_chunks` over UTF-8 bytes (``size`` in bytes), cut by
    :func:`chunk_end`, from byte ``pos`` on, the start of line ``line``."""
    n = len(data)
    while pos < n:
        state.tick()
        end = chunk_end(data, pos, size)
        chunk = data[pos:end]
        yield line, chunk
        if end < n:  # the next chunk's first line number (not needed after the last)
            line += count_newlines(chunk)
        pos = end


def plain_text(data: bytes, node: Node, state: State) -> Iterator[TextPart]:
    if sniff_encoding(data) == "utf-8":
        # already what the matcher scans: no decoding into str and encoding back
        state.details.setdefault("encoding", "utf-8")
        # the document from its start, or the rest of a split text (pipelines.process)
        line, pos = (state.first_line, state.start) if node.depth == 0 else (1, 0)
        for first, raw in byte_chunks(data, state.config.text_chunk_chars, state, line, pos):
            loc = node.location if first == 1 else node.at(f"from line {first}")
            if b"\x00" in raw:
                raw = _NULS_B.sub(b" ", raw)
            yield TextPart(raw, loc)
            yield from embedded(raw, node, state)
        return
    stream = open_text(data, state)
    for first, chunk in text_chunks(stream, state.config.text_chunk_chars, state):
        loc = node.location if first == 1 else node.at(f"from line {first}")
        if "\x00" in chunk:
            chunk = _NULS.sub(" ", chunk)  # NUL padding carries nothing; keep parts small
        yield TextPart(chunk, loc)
        yield from embedded(chunk, node, state)


# -- tables -------------------------------------------------------------------------------

def row_text(cells: list[str]) -> str:
    """Cells joined by CELL_SEP; a CELL_SEP inside a value becomes a space (rare: checked
    after the join, which keeps the common case one C call)."""
    text = CELL_SEP.join(cells)
    if text.count(CELL_SEP) != len(cells) - 1:
        text = CELL_SEP.join(c.replace(CELL_SEP, " ") for c in cells)
    return text


#: a header row holds at most this many labels of at most this many characters
HEADER_LABELS = 64
HEADER_CHARS = 64
_DIGITS4 = re.compile(r"\d{4}")


class TableHeader:
    """Finds a table's header row among its first non-empty rows, for ``TextPart.header``.

    The first non-empty row is the header when it looks like one: no cell holds a run of
    four digits (identifiers, dates, phone numbers are data). A first row with a single
    filled cell is a title above the table unless the next row has one filled cell too
    (then it labels a one-column table): a second header-like row replaces it, a data row
    leaves the table without a header. Labels are one line each, bounded; the tuple is
    shared by every row of the table."""

    __slots__ = ("_rows", "done", "header")

    def __init__(self) -> None:
        self.done = False
        self.header: tuple[str, ...] | None = None
        self._rows = 0

    def see(self, cells: list[str]) -> tuple[str, ...] | None:
        """The header to give this (non-empty) row."""
        self._rows += 1
        labels = [" ".join(c.split())[:HEADER_CHARS] for c in cells[:HEADER_LABELS]]
        filled = sum(1 for x in labels if x)
        header_like = filled > 0 and not any(_DIGITS4.search(x) for x in labels)
        if header_like and (self._rows == 1 or filled > 1):
            while labels and not labels[-1]:
                labels.pop()
            self.header = tuple(labels)
            self.done = self._rows > 1 or filled > 1
        else:
            if filled > 1:  # data under a one-cell first row: that row was a title
                self.header = None
            self.done = True
        return self.header


_DELIMITERS = ",\t;|"
_SNIFF_LINES = 64


def _unquoted_count(line: str, delimiter: str) -> int:
    """Occurrences of ``delimiter`` outside double quotes (one linear pass)."""
    if '"' not in line:
        return line.count(delimiter)
    n, quoted = 0, False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif ch == delimiter and not quoted:
            n += 1
    return n


def _dialect(sample: str, kind: str) -> type[csv.Dialect]:
    """The delimiter that splits the first lines most consistently (``,`` ``\\t`` ``;``
    ``|``), with standard double quotes. Linear in the sample: ``csv.Sniffer``'s regexes
    backtrack catastrophically on hostile samples (64 KB of ``,"a`` takes longer than
    the document's time limit)."""
    lines = [line for line in sample.splitlines()[:_SNIFF_LINES] if line.strip()]
    order = "\t,;|" if kind == "tsv" else _DELIMITERS
    best, best_score = None, (0.0, 0)
    for delimiter in order:
        counts = [_unquoted_count(line, delimiter) for line in lines]
        if not counts:
            break
        mode, freq = Counter(counts).most_common(1)[0]
        if mode == 0:
            continue
        score = (freq / len(counts), mode)  # consistency first, then columns
        if score > best_score:
            best, best_score = delimiter, score
    base = csv.excel_tab if kind == "tsv" else csv.excel
    if best is None or best == base.delimiter:
        return base
    return type("SniffedDialect", (base,), {"delimiter": best})


def csv_rows(data: bytes, node: Node, state: State, kind: str = "csv") -> Iterator[TextPart]:
    stream = open_text(data, state)
    sample = stream.read(_SAMPLE)
    stream.seek(0)
    cut = sample.rfind("\n")
    dialect = _dialect(sample[:cut] if cut > 0 else sample, kind)
    state.details.setdefault("csv_delimiter", repr(dialect.delimiter))
    reader = csv.reader(stream, dialect)
    loc, n = node.label, 0
    head = TableHeader()
    try:
        for n, row in enumerate(reader, start=1):
            if n % 4096 == 0:
                state.tick()
            header = head.header if head.done or not any(row) else head.see(row)
            yield TextPart(row_text(row), loc, n, header)
    except csv.Error as e:
        raise Failed("corrupt", f"{node.label}: CSV unreadable after row {n}: "
                                f"{reason(e)}") from None


# -- markup -------------------------------------------------------------------------------

_BLOCK = {"p", "div", "br", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5",
          "h6", "pre", "section", "article", "header", "footer", "blockquote", "dt", "dd",
          "title", "hr", "form", "textarea", "option"}
_CELL = {"td", "th"}
_INVISIBLE = ("script", "style", "noscript", "template", "head/meta", "head/link")
#: inline elements that style part of a word ("<b>A</b>123456(7)"): no separator at their
#: edges. Every other element boundary separates text (a <span> holding a name and the
#: <span> or <div> holding an HKID are two fields, never one word).
_IN_WORD = {"b", "i", "u", "em", "strong", "font", "small", "big", "sup", "sub", "mark",
            "s", "strike", "del", "ins", "tt", "code", "kbd", "var", "abbr", "bdi", "bdo",
            "wbr"}
_SPACES_RUN = re.compile(r"[ \u00a0]+")


def walk_events(el: etree._Element) -> Iterator[tuple[str, etree._Element]]:
    """("start"/"end", node) over an element and everything under it, comments and
    processing instructions included (lxml's iterwalk skips them, and with them the text
    that follows them); iterative, so a deep tree cannot exhaust the stack."""
    yield "start", el
    stack = [(el, iter(el))]
    while stack:
        node, children = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            yield "end", node
        else:
            yield "start", child
            stack.append((child, iter(child)))


def mark_boundaries(root: etree._Element) -> None:
    """Write the separators into the tree (text at an element's start is text before
    it, textually): block elements on lines of their own, table cells ended by a tab,
    other element boundaries a space, so that lxml's C ``text_content()`` never glues
    text of adjacent elements into one token."""
    for el in root.iter():
        tag = el.tag
        if not isinstance(tag, str) or tag in _IN_WORD:
            continue
        if tag in _BLOCK:
            before = after = "\n"
        elif tag in _CELL:
            before, after = " ", "\t"
        else:
            before = after = " "
        el.text = before + el.text if el.text else before
        el.tail = after + el.tail if el.tail else after


def html_text(data: bytes, node: Node, state: State) -> Iterator[TextPart]:
    """Visible text (no scripts, styles, templates) as one part, with block elements
    on lines of their own; each row of a data table as a record part."""
    from lxml import etree  # deferred for start-up (`scan` of a text file): 9 ms
    from lxml import html as lxml_html

    text = decode(data, state)
    if not text.strip():
        return
    try:
        root = lxml_html.document_fromstring(text.replace("\x00", ""))
    except (etree.ParserError, ValueError) as e:
        raise Failed("corrupt", f"{node.label}: HTML unreadable: {reason(e)}") from None
    for bad in root.xpath("//script|//style|//noscript|//template"):
        bad.drop_tree()
    mark_boundaries(root)
    # data tables (no table inside) become row records: "table 2", row 5
    tables = [t for t in root.iter("table") if not t.xpath(".//table")]
    for n, table in enumerate(tables, start=1):
        state.tick()
        rows = table.xpath("./tr|./thead/tr|./tbody/tr|./tfoot/tr")
        for r, tr in enumerate(rows, start=1):
            cells = [" ".join(c.text_content().split()) for c in tr.xpath("./td|./th")]
            if any(cells):
                yield TextPart(row_text(cells), node.at(f"table {n}"), r)
        if rows:
            table.drop_tree()
    lines = (_SPACES_RUN.sub(" ", line).strip() for line in root.text_content().splitlines())
    out = "\n".join(line for line in lines if line)
    state.tick()
    if out:
        yield TextPart(out, node.location)
        yield from embedded(out, node, state)


def xml_text(data: bytes, node: Node, state: State) -> Iterator[TextPart]:
    """Element text and attribute values, one element per line, parsed incrementally
    with entity expansion, DTDs and network access off (billion-laughs safe)."""
    from lxml import etree  # deferred for start-up (`scan` of a text file): 9 ms

    lines: list[str] = []
    size = 0
    first = 1
    try:
        for _ev, el in etree.iterparse(io.BytesIO(data), events=("end",), resolve_entities=False,
                                       no_network=True, load_dtd=False, huge_tree=False,
                                       recover=False):
            vals = [v for v in el.attrib.values() if v.strip()] if el.attrib else []
            if el.text and el.text.strip():
                vals.append(el.text.strip())
            if el.tail and el.tail.strip():
                vals.append(el.tail.strip())
            if vals:
                line = " ".join(vals)
                lines.append(line)
                size += len(line)
            if len(el) == 0 or el.getparent() is None:
                el.clear(keep_tail=False)
            if size > state.config.text_chunk_chars:
                yield _xml_part(lines, first, node)
                first += len(lines)
                lines, size = [], 0
                state.tick()
    except etree.XMLSyntaxError as e:
        if lines:
            yield _xml_part(lines, first, node)
        raise Failed("corrupt", f"{node.label}: XML unreadable: {reason(e)}") from None
    if lines:
        yield _xml_part(lines, first, node)


def _xml_part(lines: list[str], first: int, node: Node) -> TextPart:
    loc = node.location if first == 1 else node.at(f"from line {first}")
    return TextPart("\n".join(lines), loc)


# -- JSON ---------------------------------------------------------------------------------

def _json_parts(value: Any, path: str, node: Node, state: State) -> Iterator[TextPart]:
    """One part per object or array: its scalar members as "key: value" lines (so a
    record's fields stay together), at the JSON path of the container ("$.patients[3]")."""
    stack: list[tuple[Any, str, str | None]] = [(value, path, None)]
    names: dict[str, str] = {}
    count = 0
    while stack:
        obj, p, key = stack.pop()
        count += 1
        if count % 1024 == 0:
            state.tick()
        if isinstance(obj, dict):
            items = list(obj.items())
        elif isinstance(obj, list):
            items = [(i, v) for i, v in enumerate(obj)]
        else:
            if isinstance(obj, str | int | float) and not isinstance(obj, bool):
                yield TextPart(str(obj), node.at(p))
            continue
        # an object's key is content too (an export keyed by HKID): it heads the part of
        # the value it names, beside that record's fields; paths carry it masked
        lines: list[str] = [key] if key else []
        nested: list[tuple[Any, str, str | None]] = []
        for k, v in items:
            if isinstance(k, int):
                sub = f"{p}[{k}]"
            else:
                masked = names.get(k)
                if masked is None:  # export keys repeat: mask each distinct key once
                    masked = mask_name(k)
                    if len(names) < 4096:
                        names[k] = masked
                sub = f"{p}.{masked}"
            if isinstance(v, dict | list):
                nested.append((v, sub, None if isinstance(k, int) else k))
            elif isinstance(v, str | int | float) and not isinstance(v, bool):
                s = str(v)
                lines.append(s if isinstance(k, int) else f"{k}: {s}")
                if isinstance(v, str) and len(v) >= state.config.blob_min_length:
                    yield from embedded(v, node, state, where=sub)
        if lines:
            yield TextPart("\n".join(lines), node.at(p))
        stack.extend(reversed(nested))


def json_text(data: bytes, node: Node, state: State) -> Iterator[TextPart]:
    text = decode(data, state)
    try:
        value = json.loads(text)
    except RecursionError:
        raise Failed("corrupt", f"{node.label}: JSON nested too deeply") from None
    except ValueError as e:
        if isinstance(e, json.JSONDecodeError):
            if "\n" in text.strip() and text.lstrip().startswith("{"):
                yield from ndjson_text(data, node, state)
                return
            msg = f"{e.msg} at line {e.lineno} column {e.colno}"
        else:
            msg = reason(e)
        # not JSON after all: still scan it as text, and say so
        yield from plain_text(data, node, state)
        state.note("corrupt", f"{node.label}: JSON unreadable: {msg}")
        return
    del text
    yield from _json_parts(value, "$", node, state)


def ndjson_text(data: bytes, node: Node, state: State) -> Iterator[TextPart]:
    bad = 0
    for n, line in enumerate(open_text(data, state), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except RecursionError:
            bad += 1
            continue
        except ValueError:
            bad += 1
            yield TextPart(line.rstrip("\r\n"), node.at(f"line {n}"))
            continue
        yield from _json_parts(value, f"$[{n - 1}]", node, state)
    if bad:
        state.note("corrupt", f"{node.label}: {bad} NDJSON lines are not JSON")
