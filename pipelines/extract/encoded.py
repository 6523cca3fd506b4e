"""Payloads hidden in text: base64 and hex blobs, quoted-printable, e-mail messages.

A blob long enough to hide a file is decoded and extracted like any other
member (a zip in base64 in a paste is opened); decoded bytes that are
neither a known format nor readable text are ignored.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import logging
import os
import quopri
import re
import string
import threading
from collections.abc import Iterator
from email.message import EmailMessage, Message

from pipelines.extract.detect import detect
from pipelines.extract.node import Node, safe_name
from pipelines.extract.state import Failed, State, reason
from pipelines.model import TextPart

_BLOB_CHARS = (string.ascii_letters + string.digits + "+/=_-").encode()
_HEX_CHARS = frozenset("0123456789abcdefABCDEF")
_TOKENS: dict[int, re.Pattern[bytes]] = {}
_QP_SOFT = re.compile(rb"=\r?\n")
_QP_ESC = re.compile(rb"=[0-9A-F]{2}")
_MAX_BLOBS = 64


def _decode_b64(blob: str) -> bytes | None:
    compact = "".join(blob.split())
    if "-" in compact or "_" in compact:
        compact = compact.replace("-", "+").replace("_", "/")
    compact = compact.rstrip("=")
    if len(compact) % 4 == 1:
        return None
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _readable(data: bytes) -> bool:
    try:
        text = data[:4096].decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < min(len(data), 4096) - 3:
            return False
        text = data[: e.start].decode("utf-8")
    printable = sum(1 for c in text if c.isprintable() or c in "\r\n\t")
    return bool(text) and printable >= 0.95 * len(text)


def _blob_chars(b: bytes) -> int:
    return len(b) - len(b.translate(None, _BLOB_CHARS))


def _classes() -> bytes:
    """A translate table: blob characters -> "A", ASCII whitespace but the newline -> " ",
    the newline stays, everything else -> "x"."""
    table = bytearray(b"x" * 256)
    for c in _BLOB_CHARS:
        table[c] = ord("A")
    for c in b" \t\r\x0b\x0c":
        table[c] = ord(" ")
    table[ord("\n")] = ord("\n")
    return bytes(table)


_CLASSES = _classes()
_RUN = b"A" * 16  # blob_min_length is at least 16: every blob line or token holds this
_RUN_EXPR = rb"[A-Za-z0-9+/=_\-]{16}"
_hs = threading.local()


def _may_hold_run(text: bytes) -> bool:
    """False when ``text`` certainly has no 16 blob characters in a row: one hyperscan
    pass (~2 GB/s on prose), where hyperscan is installed; True otherwise."""
    try:
        import hyperscan  # optional (a platform without it scans with re)
    except ImportError:  # pragma: no cover - depends on the platform
        return True
    if getattr(_hs, "pid", None) != os.getpid():
        db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        db.compile(expressions=[_RUN_EXPR], flags=[hyperscan.HS_FLAG_SINGLEMATCH])
        _hs.db, _hs.scratch, _hs.pid = db, hyperscan.Scratch(db), os.getpid()
    found: list[int] = []
    _hs.db.scan(text, match_event_handler=lambda *_: found.append(1), scratch=_hs.scratch)
    return bool(found)


def blob_candidates(text: str | bytes, min_len: int) -> Iterator[tuple[int, str]]:
    """(line number, blob): runs of base64-only lines (MIME wraps at 76) and long
    base64/hex tokens inside long lines, in text or UTF-8 bytes.

    Either kind holds 16 blob characters in a row, so only lines holding such a run
    are looked at: found with one C-level translate and ``find`` over the whole text,
    so a 100 MB line of NULs or prose costs little."""
    if isinstance(text, str):
        text = text.encode("utf-8", "replace")
    token = _TOKENS.get(min_len)
    if token is None:
        token = _TOKENS[min_len] = re.compile(rb"[A-Za-z0-9+/=_-]{" + str(min_len).encode()
                                              + rb",}")
    if not _may_hold_run(text):
        return
    mapped = text.translate(_CLASSES)
    counted, lines = 0, 0  # newlines counted in text[:counted]

    def line_of(at: int) -> int:
        nonlocal counted, lines
        lines += text.count(b"\n", counted, at)
        counted = at
        return lines + 1

    run: list[bytes] = []
    start = prev_end = -2  # first line of the run (number); end of its last line (offset)
    p = mapped.find(_RUN)
    while p != -1:
        ls = text.rfind(b"\n", 0, p) + 1
        le = text.find(b"\n", p)
        if le == -1:
            le = len(text)
        line = text[ls:le]
        s = line.strip()
        if 16 <= len(s) <= 1024 and _blob_chars(s) == len(s):
            if run and ls != prev_end + 1:  # not the line right after the run's last
                if sum(map(len, run)) >= min_len:
                    yield start, b"".join(run).decode("ascii")
                run = []
            if not run:
                start = line_of(ls)
            run.append(s)
            prev_end = le
        else:
            if run:
                if sum(map(len, run)) >= min_len:
                    yield start, b"".join(run).decode("ascii")
                run = []
            if len(line) >= min_len and _blob_chars(line) >= min_len:
                for m in token.finditer(line):
                    yield line_of(ls), m.group(0).decode("ascii")
        p = mapped.find(_RUN, le + 1)
    if run and sum(map(len, run)) >= min_len:
        yield start, b"".join(run).decode("ascii")


def _decode_blob(blob: str) -> tuple[str, bytes | None]:
    blob = blob.rstrip("=") if set(blob.rstrip("=")) <= _HEX_CHARS else blob
    if set(blob) <= _HEX_CHARS:
        if blob.isdigit():
            return "hex", None  # a long number, not an encoding
        return "hex", binascii.unhexlify(blob[: len(blob) // 2 * 2])
    return "base64", _decode_b64(blob)


_IGNORED = {"binary", "png", "jpeg", "gif", "riff", "elf", "exe", "ogg", "mp3"}


def embedded(text: str | bytes, node: Node, state: State,
             where: str | None = None) -> Iterator[TextPart]:
    """Parts from blobs and quoted-printable inside ``text`` (str or UTF-8 bytes;
    recursively, depth-limited)."""
    cfg = state.config
    if node.depth >= cfg.max_depth or len(text) < cfg.blob_min_length:
        return
    if isinstance(text, str):
        text = text.encode("utf-8", "replace")
    qp = 1 << 20  # soft line breaks and escapes are looked for in the first MiB
    if (text.find(b"=", 0, qp) != -1  # memchr: prose without "=" costs nothing more
            and len(_QP_SOFT.findall(text, 0, qp)) >= 3 and _QP_ESC.search(text, 0, qp)):
        decoded = quopri.decodestring(text)
        state.charge(len(decoded), node.label)
        yield TextPart(decoded.decode("utf-8", "replace"), node.at("quoted-printable"))
    found = 0
    for line, blob in blob_candidates(text, cfg.blob_min_length):
        state.tick()
        kind, data = _decode_blob(blob)
        if not data:
            continue
        kind_found = detect(data, "")
        if kind_found in _IGNORED:
            continue
        if kind_found in {"text", "csv"} and not _readable(data):
            continue
        found += 1
        if found > _MAX_BLOBS:
            state.details["blobs_skipped"] = state.details.get("blobs_skipped", 0) + 1
            continue
        state.charge(len(data), node.label)
        label = f"{where or ''}{'/' if where else ''}{kind} at line {line}"
        state.details["embedded"] = state.details.get("embedded", 0) + 1
        yield from state.walk(data, node.child(label))


def eml(data: bytes, node: Node, state: State) -> Iterator[TextPart]:
    """Headers that may carry text (subject), each text body, each attachment as a member."""
    try:
        msg = email.message_from_bytes(data, policy=email.policy.default)
    except Exception as e:  # the parser is lenient; this is rare
        raise Failed("corrupt", f"{node.label}: e-mail unreadable: {reason(e)}") from None
    assert isinstance(msg, EmailMessage)
    head = [f"{k}: {v}" for k, v in msg.items() if k.lower() in {"subject", "from", "to"}]
    if head:
        yield TextPart("\n".join(head), node.at("headers"))
    bodies = 0
    for n, part in enumerate(msg.walk()):
        state.tick()
        if part.is_multipart():
            continue
        filename = part.get_filename()
        try:
            decoded = part.get_payload(decode=True)  # bytes for a non-multipart part
        except Exception:
            decoded = None
        payload = decoded if isinstance(decoded, bytes) else b""
        state.charge(len(payload), node.label)
        ctype = part.get_content_type()
        if not filename and ctype in ("text/plain", "text/html"):
            bodies += 1
            ext = "html" if ctype == "text/html" else "txt"
            name = f"body{'' if bodies == 1 else bodies}.{ext}"
            yield from state.walk(payload, node.child(name))
        elif ctype == "message/rfc822":
            inner = part.get_payload()
            raw = inner[0].as_bytes() if isinstance(inner, list) and inner \
                and isinstance(inner[0], Message) else payload
            yield from state.walk(raw, node.child(filename or f"message{n}.eml"))
        elif payload:
            yield from state.walk(payload, node.child(filename or f"attachment{n}"))


# -- Outlook .msg ----------------------------------------------------------------------------

def outlook_msg(data: bytes, node: Node, state: State) -> Iterator[TextPart]:
    """An Outlook message through extract-msg: headers, body (plain, else HTML, else RTF),
    attachments as members, embedded messages recursively under the depth limit."""
    import extract_msg  # 170 ms: loaded by the first .msg, not by every scan (start-up)
    from extract_msg.enums import ErrorBehavior

    logging.getLogger("extract_msg").setLevel(logging.CRITICAL)  # it logs names, content
    # a broken or unknown attachment, or a property set off the standard, is not a reason
    # to lose the whole message: such attachments come back without data (listed below)
    lenient = (ErrorBehavior.ATTACH_SUPPRESS_ALL | ErrorBehavior.STANDARDS_VIOLATION
               | ErrorBehavior.RTFDE)
    try:
        msg = extract_msg.openMsg(data, errorBehavior=lenient)
    except Exception as e:
        raise Failed("corrupt", f"{node.label}: Outlook message unreadable: "
                                f"{reason(e)}") from None
    try:
        yield from _message(msg, node, state)
    finally:
        msg.close()


def _message(msg: object, node: Node, state: State) -> Iterator[TextPart]:
    state.tick()
    head = [f"{k}: {v}" for k in ("subject", "sender", "to", "cc")
            if isinstance(v := getattr(msg, k, None), str) and v.strip()]
    if head:
        yield TextPart("\n".join(head), node.at("headers"))
    body = getattr(msg, "body", None)
    if isinstance(body, str) and body.strip():
        state.charge(len(body), node.label)
        yield TextPart(body, node.at("body"))
    else:
        for attr, name in (("htmlBody", "body.html"), ("rtfBody", "body.rtf")):
            raw = getattr(msg, attr, None)
            if isinstance(raw, bytes) and raw.strip():
                yield from state.walk(raw, node.child(name))
                break
    for n, att in enumerate(getattr(msg, "attachments", None) or [], start=1):
        name = (getattr(att, "longFilename", None) or getattr(att, "shortFilename", None)
                or f"attachment{n}")
        content = getattr(att, "data", None)
        child = node.child(name)
        state.member(safe_name(child.label))
        if isinstance(content, bytes):
            state.charge(len(content), safe_name(child.label))
            yield from state.walk(content, child)
        elif content is not None and hasattr(content, "attachments"):  # embedded message
            if child.depth > state.config.max_depth:
                state.details["depth_limit_hit"] = state.details.get("depth_limit_hit", 0) + 1
                state.skip(child.label, "too_large", f"{safe_name(child.label)}: nested "
                           f"deeper than {state.config.max_depth} levels, not opened", note=True)
                continue
            yield from _message(content, child, state)
        else:
            broken = "BROKEN" in str(getattr(att, "type", "")).upper()
            state.skip(child.label, "corrupt" if broken else "unsupported",
                       f"{safe_name(child.label)}: attachment "
                       f"{'damaged' if broken else 'of a kind not read'}", note=True)
