"""Office formats beyond OOXML: Word/PowerPoint 97-2003, OpenDocument, encrypted Office.

- ``.doc``: Debian's ``antiword`` (keeps table rows on one line, Unicode output), with
  ``catdoc`` as the fallback for what antiword refuses (Word 6/95, fast-saved files).
  They run in a memory file under the document's time and output limits
  (:mod:`.tools`). No maintained pure-Python reader of Word 97 text exists; these two
  are small, packaged and long-lived. ``.ppt``: the text atoms of the "PowerPoint
  Document" stream read through olefile, per slide (``catppt`` finds nothing in
  LibreOffice's .ppt files, whose text sits in the slides' drawings); catppt remains
  the fallback.
- OpenDocument (``.odt``/``.odp``/``.odg``): ``content.xml`` parsed incrementally by lxml
  with entities unresolved, no DTD, no network and libxml2's size/depth limits, read
  through the expanded-bytes budget (a billion-laughs ``content.xml`` expands nothing).
  Paragraphs form the document text, table rows are records ("table 2", row 5),
  slides and drawing pages are "slide 3" / "page 3". ``.ods`` stays with the
  spreadsheet reader. A password-protected document (LibreOffice's AES-256-CBC with a
  PBKDF2 key) is opened with the candidate passwords (``cryptography``).
- Encryption (OOXML Agile/Standard in an OLE wrapper, legacy RC4/CryptoAPI ``.doc``,
  ``.xls``, ``.ppt``): ``msoffcrypto-tool`` with the candidate passwords, as for
  ZIP/7z/PDF; the decrypted file is extracted as what it is, at the same location.

msoffcrypto (12 ms), olefile (7 ms) and ``cryptography``'s ciphers (8 ms) are imported
inside the functions that need them: an unencrypted OOXML/ODF file loads none of them
(start-up of a scan, ``python -X importtime``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator

from lxml import etree

from pipelines.extract.archives import ZlibStream, inflate, read_limited
from pipelines.extract.node import Node, safe_name
from pipelines.extract.state import Failed, State, Stop, reason
from pipelines.extract.text import TableHeader, row_text, walk_events
from pipelines.extract.tools import memory_file, run_tool
from pipelines.model import TextPart

# -- encryption --------------------------------------------------------------------------

#: Excel's built-in password for workbooks "protected" without one of the user's own
_EXCEL_DEFAULT = "VelvetSweatshop"


def _encrypted(data: bytes) -> bool:
    import msoffcrypto

    try:
        return bool(msoffcrypto.OfficeFile(io.BytesIO(data)).is_encrypted())
    except Exception:
        return False  # not something msoffcrypto understands: the reader decides


def decrypt(data: bytes, node: Node, state: State, kind: str) -> bytes:
    """The decrypted file, trying the candidate passwords; Failed("encrypted") if none."""
    import msoffcrypto
    from msoffcrypto.exceptions import DecryptionError, InvalidKeyError

    candidates = state.candidate_passwords()
    if kind == "xls":
        candidates = [_EXCEL_DEFAULT, *candidates]
    what = {"ooxml_encrypted": "Office document"}.get(kind, kind.upper())
    for pw in candidates:
        state.tick()
        try:
            office = msoffcrypto.OfficeFile(io.BytesIO(data))
            if kind == "ooxml_encrypted":
                office.load_key(password=pw, verify_password=True)
            else:  # the legacy readers check the password's verifier themselves
                office.load_key(password=pw)
            out = io.BytesIO()
            office.decrypt(out)
        except (InvalidKeyError, DecryptionError):
            continue
        except Exception as e:
            if "password" in str(e).lower():
                continue
            raise Failed("encrypted", f"{safe_name(node.label)}: {what} is encrypted with "
                                      f"a method that cannot be read: {reason(e)}") from None
        plain = out.getvalue()
        state.charge(len(plain), safe_name(node.label))
        if pw != _EXCEL_DEFAULT:
            state.details["passwords_worked"] = state.details.get("passwords_worked", 0) + 1
        return plain
    raise Failed("encrypted", f"{safe_name(node.label)}: {what} is password-protected and "
                              f"no candidate password worked")


def _inner(data: bytes, node: Node, state: State) -> Iterator[TextPart]:
    """The decrypted file extracted as what it is, at the same location."""
    yield from state.run(data, Node(node.location, node.name, node.depth + 1))


def encrypted_ooxml(data: bytes, node: Node, state: State) -> Iterator[TextPart]:
    if node.depth > state.config.max_depth:
        raise Failed("too_large", f"{safe_name(node.label)}: nested too deeply")
    yield from _inner(decrypt(data, node, state, "ooxml_encrypted"), node, state)


Handler = Callable[[bytes, Node, State], Iterator[TextPart]]


def legacy(kind: str, read: Handler) -> Handler:
    """A .doc/.xls/.ppt reader that first opens RC4/CryptoAPI encryption."""

    def handler(data: bytes, node: Node, state: State) -> Iterator[TextPart]:
        if _encrypted(data):
            if node.depth > state.config.max_depth:
                raise Failed("too_large", f"{safe_name(node.label)}: nested too deeply")
            data = decrypt(data, node, state, kind)
            node = Node(node.location, node.name, node.depth + 1)
        yield from read(data, node, state)

    return handler


# -- Word and PowerPoint 97-2003 ---------------------------------------------------------

def doc(data: bytes, node: Node, state: State) -> Iterator[TextPart]:
    with memory_file(data) as path:
        try:
            out = run_tool(["antiword", "-m", "UTF-8.txt", "-w", "0", path], state,
                           node.label)
        except Failed as first:
            try:
                out = run_tool(["catdoc", "-d", "utf-8", "-w", path], state, node.label)
            except Failed:
                raise first from None
    text = out.decode("utf-8", "replace")
    if text.strip():
        yield TextPart(text, node.location)


#: PowerPoint binary records: containers whose text is grouped, and the text atoms
_PPT_GROUPS = {0x03EE: "slide", 0x03F0: "notes", 0x03F8: "master", 0x0FF0: "outline"}
_PPT_TEXT = {0x0FA0: "utf-16-le", 0x0FBA: "utf-16-le", 0x0FA8: "latin-1"}


def _ppt_text(stream: bytes, state: State) -> Iterator[tuple[str, str]]:
    """(group, text) from the "PowerPoint Document" record stream: every TextChars,
    TextBytes and CString atom, grouped by the slide / notes / master container that
    holds it ("slide 2" counts slides in stream order)."""
    counts: dict[str, int] = {}
    open_groups: list[tuple[int, str]] = []  # (end offset, group)
    i, n, records = 0, len(stream), 0
    while i + 8 <= n:
        while open_groups and i >= open_groups[-1][0]:
            open_groups.pop()
        verinst, rtype, length = struct.unpack_from("<HHI", stream, i)
        records += 1
        if records % 4096 == 0:
            state.tick()
        if verinst & 0xF == 0xF:  # a container: its records follow
            kind = _PPT_GROUPS.get(rtype)
            if kind:
                counts[kind] = counts.get(kind, 0) + 1
                label = f"{kind} {counts[kind]}" if kind in ("slide", "notes") else kind
                open_groups.append((i + 8 + length, label))
            i += 8
            continue
        enc = _PPT_TEXT.get(rtype)
        if enc:
            text = stream[i + 8:i + 8 + length].decode(enc, "replace").replace("\r", "\n")
            if text.strip() and text != "___PPT10":
                yield (open_groups[-1][1] if open_groups else "presentation"), text
        i += 8 + length


def ppt(data: bytes, node: Node, state: State) -> Iterator[TextPart]:
    """Text atoms of the record stream (olefile), per slide; ``catppt`` when the stream
    gives nothing (a damaged or unusual file)."""
    import olefile

    found = False
    try:
        with olefile.OleFileIO(data) as ole:
            stream = ole.openstream("PowerPoint Document").read()
        state.charge(len(stream), safe_name(node.label))
        group: str | None = None
        lines: list[str] = []
        for where, text in _ppt_text(stream, state):
            if where != group and lines:
                found = True
                yield TextPart("\n".join(lines), node.at(group or "presentation"))
                lines = []
            group = where
            lines.append(text)
        if lines:
            found = True
            yield TextPart("\n".join(lines), node.at(group or "presentation"))
    except (OSError, ValueError, EOFError) as e:
        state.details["ppt_stream"] = reason(e)
    if found:
        return
    with memory_file(data) as path:
        out = run_tool(["catppt", "-d", "utf-8", path], state, node.label)
    text = out.decode("utf-8", "replace")
    if text.strip():
        yield TextPart(text, node.location)


# -- OpenDocument ------------------------------------------------------------------------

_NS = {"text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
       "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
       "draw": "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0"}
_P = {f"{{{_NS['text']}}}p", f"{{{_NS['text']}}}h"}
_SPACE = f"{{{_NS['text']}}}s"
_TAB = f"{{{_NS['text']}}}tab"
_BREAK = f"{{{_NS['text']}}}line-break"
_TABLE = f"{{{_NS['table']}}}table"
_ROW = f"{{{_NS['table']}}}table-row"
_CELLS = {f"{{{_NS['table']}}}table-cell", f"{{{_NS['table']}}}covered-table-cell"}
_REPEAT = f"{{{_NS['table']}}}number-columns-repeated"
_COUNT = f"{{{_NS['text']}}}c"
_PAGE = f"{{{_NS['draw']}}}page"
_ROWS_REPEAT = f"{{{_NS['table']}}}number-rows-repeated"
_NAME = f"{{{_NS['table']}}}name"
_MAX_REPEAT = 256
#: columns of an OpenDocument sheet (LibreOffice's limit since 7.4 is 16,384)
_MAX_COLUMNS = 16384


def _odf_text(el: etree._Element) -> str:
    """The text of an element as written: <text:s c="3"/> is spaces, tabs and line
    breaks are kept, paragraphs end a line (spans are joined as the reader sees them)."""
    out: list[str] = []
    for event, e in walk_events(el):
        tag = e.tag
        if event == "start":
            if tag == _SPACE:
                out.append(" " * min(int(e.get(_COUNT, "1") or 1), 64))
            elif tag == _TAB:
                out.append("\t")
            elif tag == _BREAK:
                out.append("\n")
            elif e.text and isinstance(tag, str):
                out.append(e.text)
        else:
            if tag in _P:
                out.append("\n")
            if e is not el and e.tail:
                out.append(e.tail)
    return "".join(out)


_MANIFEST = "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"
#: PBKDF2 rounds accepted per candidate password (LibreOffice uses 100,000); more is a
#: file built to burn the time limit
_MAX_ROUNDS = 1_000_000


def _odf_encryption(manifest: bytes, member: str) -> dict[str, str] | None:
    """The manifest's encryption parameters of ``member`` (None when not encrypted)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(manifest, parser)
    m = f"{{{_MANIFEST}}}"
    for entry in root.iter(f"{m}file-entry"):
        if entry.get(f"{m}full-path") != member:
            continue
        enc = entry.find(f"{m}encryption-data")
        if enc is None:
            return None
        out = {"checksum-type": enc.get(f"{m}checksum-type", ""),
               "checksum": enc.get(f"{m}checksum", "")}
        for child in enc:
            out.update({k.split("}", 1)[-1]: v for k, v in child.attrib.items()})
        return out
    return None


def _odf_decrypt(raw: bytes, enc: dict[str, str], password: str, state: State,
                 where: str) -> bytes | None:
    """``raw`` decrypted (AES-256-CBC, PBKDF2 key from the password's SHA-256 or SHA-1)
    and inflated; None when the password's checksum does not match."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    start_name = enc.get("start-key-generation-name", "sha1")
    start = (hashlib.sha256 if start_name.endswith("sha256") else hashlib.sha1)(
        password.encode("utf-8")).digest()
    rounds = int(enc.get("iteration-count", "0") or 0)
    key = hashlib.pbkdf2_hmac("sha1", start, base64.b64decode(enc.get("salt", "")), rounds,
                              int(enc.get("key-size", "32") or 32))
    iv = base64.b64decode(enc.get("initialisation-vector", ""))
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    head = decryptor.update(raw[:1024])
    digest = hashlib.sha256 if "sha256" in enc.get("checksum-type", "") else hashlib.sha1
    if digest(head[:1024]).digest() != base64.b64decode(enc.get("checksum", "")):
        return None
    plain = head + decryptor.update(raw[1024:]) + decryptor.finalize()
    if plain and 1 <= plain[-1] <= 16:
        plain = plain[:-plain[-1]]  # W3C XML encryption padding
    try:
        return inflate(plain, state, where, lambda: ZlibStream(wbits=-15), multi=False)
    except zlib.error:
        return None


def _odf_unlock(raw: bytes, enc: dict[str, str], node: Node, state: State) -> bytes:
    """content.xml opened with a candidate password (LibreOffice's AES-256 encryption);
    Failed("encrypted") when none works or the method is not that one."""
    where = safe_name(node.label)
    algorithm = enc.get("algorithm-name", "")
    rounds = int(enc.get("iteration-count", "0") or 0)
    if not algorithm.endswith("aes256-cbc") or enc.get("key-derivation-name") != "PBKDF2" \
            or not 0 < rounds <= _MAX_ROUNDS:
        raise Failed("encrypted", f"{where}: OpenDocument is password-protected with a "
                                  f"method that is not read")
    for pw in state.candidate_passwords():
        state.tick()
        spent = state.expanded
        try:
            plain = _odf_decrypt(raw, enc, pw, state, where)
        except (ValueError, TypeError):
            plain = None
        if plain is not None:
            state.details["passwords_worked"] = state.details.get("passwords_worked", 0) + 1
            return plain
        state.expanded = spent
    raise Failed("encrypted", f"{where}: OpenDocument is password-protected and no "
                              f"candidate password worked")


def _odf_open(data: bytes, node: Node, state: State) -> bytes:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        names = set(zf.namelist())
        if "content.xml" not in names:
            raise Failed("corrupt", f"{safe_name(node.label)}: OpenDocument has no content")
        with zf.open("content.xml") as fp:
            content = read_limited(fp, state, safe_name(node.label))
        if "META-INF/manifest.xml" in names:
            with zf.open("META-INF/manifest.xml") as fp:
                manifest = read_limited(fp, state, safe_name(node.label))
            enc = _odf_encryption(manifest, "content.xml") if b"encryption-data" in \
                manifest else None
            if enc is not None:
                return _odf_unlock(content, enc, node, state)
        return content
    except (Failed, Stop):
        raise
    except Exception as e:
        raise Failed("corrupt", f"{safe_name(node.label)}: OpenDocument unreadable: "
                                f"{reason(e)}") from None


def _count(value: str | None) -> int:
    """A repeat count attribute (number-rows/columns-repeated), 1 when absent or bad."""
    try:
        return max(1, min(int(value or 1), 1 << 24))
    except ValueError:
        return 1


def odf(data: bytes, node: Node, state: State, kind: str = "odt") -> Iterator[TextPart]:
    """Paragraphs ("document", or per "slide N" / "page N"), table rows as records at
    their row number (repeated rows counted). ``kind="ods"``: a spreadsheet that the fast
    reader refused, its tables as sheets by name ("Ward", row 7), cells at their column."""
    content = _odf_open(data, node, state)
    pages = kind in ("odp", "odg")
    page_word = "slide" if kind == "odp" else "page"
    lines: list[str] = []
    page = 0
    tables: list[tuple[str, list[int], TableHeader]] = []  # open tables: where, row, head
    table_count = 0
    cells: list[str] = []
    gap = rows = in_cell = 0
    sheets = kind == "ods"

    def flush(where: str) -> Iterator[TextPart]:
        text = "\n".join(x for x in (ln.strip() for ln in lines) if x)
        lines.clear()
        if text:
            yield TextPart(text, node.at(where))

    try:
        for event, el in etree.iterparse(io.BytesIO(content), events=("start", "end"),
                                         resolve_entities=False, no_network=True,
                                         load_dtd=False, huge_tree=False):
            tag = el.tag
            if event == "start":
                if tag in _CELLS:
                    in_cell += 1
                elif tag == _TABLE:
                    table_count += 1
                    if sheets:
                        where = el.get(_NAME) or f"Sheet{table_count}"
                    elif pages:
                        where = f"{page_word} {max(page, 1)} table {table_count}"
                    else:
                        where = f"table {table_count}"
                    tables.append((where, [0], TableHeader()))
                elif tag == _PAGE:
                    page += 1
                    table_count = 0
                continue
            if tag in _CELLS:
                in_cell -= 1
                text = " ".join(_odf_text(el).split())
                repeat = _count(el.get(_REPEAT))
                if text:  # empty cells before it keep its column (up to the format's last)
                    cells.extend([""] * max(0, min(gap, _MAX_COLUMNS - len(cells))))
                    cells.extend([text] * min(repeat, _MAX_REPEAT))
                    gap = 0
                else:
                    gap += repeat
                el.clear(keep_tail=True)
            elif tag == _ROW and tables:
                where, counter, head = tables[-1]
                number = counter[0] + 1
                counter[0] += _count(el.get(_ROWS_REPEAT))
                if cells:
                    text = row_text(cells)
                    state.charge(len(text), safe_name(node.label))
                    yield TextPart(text, node.at(where), number,
                                   head.header if head.done else head.see(cells))
                cells, gap = [], 0
                el.clear(keep_tail=True)
                rows += 1
                if rows % 1024 == 0:
                    state.tick()
            elif tag == _TABLE and tables:
                tables.pop()
            elif tag in _P and not in_cell:
                lines.append(_odf_text(el))
                el.clear(keep_tail=True)
                if len(lines) % 4096 == 0:
                    state.tick()
            elif tag == _PAGE and pages:
                yield from flush(f"{page_word} {page}")
    except etree.XMLSyntaxError as e:
        yield from flush("document" if not pages else f"{page_word} {max(page, 1)}")
        raise Failed("corrupt", f"{safe_name(node.label)}: OpenDocument content unreadable: "
                                f"{reason(e)}") from None
    yield from flush("document" if not pages else f"{page_word} {max(page, 1)}")

