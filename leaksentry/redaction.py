"""The one redaction policy: stranger-controlled text made safe to store, send or print.

Every string that came from outside -- file and archive member names, URLs and query
strings, page titles, feed item ids, sheet and directory names, table labels, JSON
keys, library error messages -- goes through this module before it is stored (SQLite,
Elasticsearch, spool, outbox), sent (alerts, metrics labels) or printed (CLI, logs)::

    from leaksentry import redaction

    redaction.redact(text)               # str -> str, None -> None: identifiers masked,
                                         # URL userinfo (user:password@) removed
    redaction.redact_line(text, 200)     # the same as one bounded line (for names/labels)
    redaction.redact_error(text)         # library error text: one line, quoted text elided
    redaction.redact_label(text, 64)     # document text kept (labels): digit runs starred too
    redaction.mask("hkid", "A1234563")   # "A12****(3)": the one display mask
    redaction.configure(settings.matching)   # once per process after loading the config,
                                         # so configured kinds are masked too
    redaction.install_log_redaction()    # every log record of the process redacted
    redaction.Sealer(secret).key(item_id) / .seal(url) / .open(sealed)   # for stores

What is masked: every token of every identifier kind -- the built-in ``hkid``, the
hospital number (``[matching.hn]``) and the configured ``[[matching.kinds]]`` -- in any
written form the scanner accepts (brackets, dashes, slashes, full-width, spaces, lower
case) that passes the kind's checksum, whether or not it is in the register. Tokens
are searched in the text as it is, in its percent- and ``+``-decoded forms (nested
encodings too; the mask replaces the encoded characters), in its NFKC form, and also
without the scanner's word boundaries (``patientA1234563.pdf``). Base64 inside URLs is
out of scope.

The mask format is decided here only: ``hkid`` keeps its letters and two digits and
shows the check character in brackets (``A12****(3)``, ``AB98****(3)``); other kinds keep
their letter prefix and two digits, star the rest and show a trailing check letter in
brackets (``HN12******(A)``, ``HN27*******``).

Without :func:`configure` the process-wide policy knows the built-in kinds only; a
:class:`Policy` can also be built and used explicitly (``Policy(build_kinds(cfg))``).
This module is in the bottom layer: it imports only config and the identifier grammar.
"""

from __future__ import annotations

import logging
import re
import string
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from leaksentry.config.matching import MatchingConfig
    from leaksentry.identifiers.kinds import Kind

__all__ = [
    "Policy",
    "Sealer",
    "configure",
    "install_log_redaction",
    "mask",
    "mask_b",
    "policy",
    "redact",
    "redact_error",
    "redact_label",
    "redact_line",
    "strip_userinfo",
]

# --- the mask: one format for every output --------------------------------------------------

_LETTERS = string.ascii_letters
_LETTERS_B = _LETTERS.encode()


def mask(kind: str, canonical: str) -> str:
    """A display form of one identifier that identifies nobody.

    ``hkid``: letters, two digits, four stars, check in brackets (``A12****(3)``,
    ``AB98****(3)``); ``hn`` and custom kinds: letter prefix, two digits, stars, a
    trailing check letter in brackets (``HN12******(A)``).
    """
    if kind == "hkid" and len(canonical) in (8, 9):
        return f"{canonical[:-5]}****({canonical[-1]})"
    return _mask_generic(canonical, bracket_check=(kind == "hkid"))


def _mask_generic(canonical: str, bracket_check: bool) -> str:
    rest = canonical.lstrip(_LETTERS)
    prefix = canonical[: len(canonical) - len(rest)]
    if not rest:  # all letters: show only the first two
        return canonical[:2] + "*" * max(0, len(canonical) - 2)
    check = ""
    if (bracket_check and len(rest) > 1) or (len(rest) > 1 and rest[-1].isalpha()):
        check, rest = f"({rest[-1]})", rest[:-1]
    shown = rest[:2] if len(rest) > 4 else ""
    return prefix + shown + "*" * (len(rest) - len(shown)) + check


def mask_b(kind: str, canonical: bytes) -> str:
    """:func:`mask` of a canonical form given as bytes: the scanner's hot path (56,000
    hospital numbers in one sheet), with no decode until the end for ASCII forms. The
    tests check it gives exactly :func:`mask`'s output."""
    if not canonical.isascii():
        return mask(kind, canonical.decode("utf-8", "replace"))
    if kind == "hkid":
        if len(canonical) in (8, 9):
            return f"{canonical[:-5].decode()}****({chr(canonical[-1])})"
        return mask(kind, canonical.decode())
    rest = canonical.lstrip(_LETTERS_B)
    prefix = canonical[: len(canonical) - len(rest)]
    if not rest:
        return canonical[:2].decode() + "*" * max(0, len(canonical) - 2)
    check = ""
    if len(rest) > 1 and rest[-1:].isalpha():
        check, rest = f"({chr(rest[-1])})", rest[:-1]
    shown = rest[:2] if len(rest) > 4 else b""
    return (prefix + shown).decode() + "*" * (len(rest) - len(shown)) + check


# --- URL userinfo ---------------------------------------------------------------------------

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]{0,30}://)[^/?#@\s]*@")
# ``user:password@host`` without a scheme (as libraries echo a netloc in their errors)
_BARE_USERINFO = re.compile(r"(?<![^\s'\"(<\[=,;])[^\s/?#@:'\"]+:[^\s/?#@'\"]*@(?=[\w\[])")


def strip_userinfo(text: str) -> str:
    """``https://user:pw@host/x`` -> ``https://host/x`` (any scheme, anywhere in the text);
    a bare ``user:pw@host`` loses its ``user:pw@`` too."""
    if "@" not in text:
        return text
    return _BARE_USERINFO.sub("", _USERINFO.sub(r"\1", text))


# --- views of a text: as is, percent/+-decoded, NFKC ----------------------------------------

_PCT = re.compile(r"%[0-9A-Fa-f]{2}")
_MAX_DECODES = 3  # nested percent-encodings followed (``%2541`` -> ``%41`` -> ``A``)


@dataclass(slots=True)
class _View:
    """A transformed copy of the original text; character ``i`` of ``text`` came from
    ``orig[starts[i]:ends[i]]`` (None: the identity map)."""

    text: str
    starts: list[int] | None = None
    ends: list[int] | None = None

    def span(self, a: int, b: int) -> tuple[int, int]:
        if self.starts is None or self.ends is None:
            return a, b
        return self.starts[a], self.ends[b - 1]

    def _origin(self, i: int) -> tuple[int, int]:
        if self.starts is None or self.ends is None:
            return i, i + 1
        return self.starts[i], self.ends[i]


def _utf8_len(lead: int) -> int:
    if lead < 0xC2:
        return 1
    if lead < 0xE0:
        return 2
    if lead < 0xF0:
        return 3
    return 4 if lead < 0xF5 else 1


def _decoded(view: _View) -> _View | None:
    """The percent-decoded view (``+`` read as a space, as in query strings), or None
    when decoding changes nothing."""
    t = view.text
    if "%" not in t and "+" not in t:
        return None
    raw = bytearray()
    spans: list[tuple[int, int]] = []  # per decoded byte: its span in the original text
    i, n = 0, len(t)
    while i < n:
        c = t[i]
        if c == "%" and _PCT.match(t, i):
            raw.append(int(t[i + 1:i + 3], 16))
            a, _ = view._origin(i)
            _, b = view._origin(i + 2)
            spans.append((a, b))
            i += 3
            continue
        o = view._origin(i)
        if c == "+":
            raw.append(0x20)
            spans.append(o)
        else:
            enc = c.encode("utf-8", "surrogatepass")
            raw += enc
            spans.extend([o] * len(enc))
        i += 1
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    j, m = 0, len(raw)
    while j < m:
        k = _utf8_len(raw[j])
        try:
            ch = bytes(raw[j:j + k]).decode("utf-8")
        except UnicodeDecodeError:
            ch, k = "\ufffd", 1
        chars.append(ch)
        starts.append(spans[j][0])
        ends.append(spans[j + k - 1][1])
        j += k
    text = "".join(chars)
    if text == t:
        return None
    return _View(text, starts, ends)


def _nfkc(view: _View) -> _View | None:
    """The NFKC view (full-width forms as ASCII), char by char so positions map back."""
    t = view.text
    if t.isascii():
        return None
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for i, c in enumerate(t):
        a, b = view._origin(i)
        n = unicodedata.normalize("NFKC", c) if ord(c) >= 0x80 else c
        for ch in n:
            chars.append(ch)
            starts.append(a)
            ends.append(b)
    text = "".join(chars)
    return None if text == t else _View(text, starts, ends)


def _views(text: str) -> list[_View]:
    views = [_View(text)]
    cur = views[0]
    for _ in range(_MAX_DECODES):
        nxt = _decoded(cur)
        if nxt is None:
            break
        views.append(nxt)
        cur = nxt
    for v in list(views):
        nv = _nfkc(v)
        if nv is not None:
            views.append(nv)
    return views


# --- the policy -----------------------------------------------------------------------------

_Found = tuple[int, int, str, str]  # (start, end in the original text, kind, canonical)


class Policy:
    """The redaction policy for a set of identifier kinds (see the module docstring)."""

    def __init__(self, kinds: Sequence[Kind]) -> None:
        self.kinds = list(kinds)
        # a first cheap test: does anything of any kind occur at all (no boundaries)? One
        # alternation when the patterns combine (custom ones may repeat a group name or
        # use back-references), else each kind's own
        self._any: list[re.Pattern[bytes]]
        try:
            self._any = [re.compile(b"|".join(rb"(?:" + k.pattern + rb")" for k in self.kinds))]
        except re.error:
            self._any = [k.full for k in self.kinds]

    @classmethod
    def from_config(cls, cfg: MatchingConfig | None = None) -> Policy:
        # deferred for start-up: installing the log filter (every command, --help too)
        # must not load the config models
        from leaksentry.identifiers.kinds import build_kinds

        return cls(build_kinds(cfg))

    def _maybe(self, text: str) -> bool:
        if "%" in text or "+" in text or not text.isascii():
            return True
        data = text.encode("ascii")
        return any(rx.search(data) is not None for rx in self._any)

    def find(self, text: str) -> list[_Found]:
        """Every valid identifier token in ``text`` (in any of its views), as spans of the
        original text, overlapping ones included."""
        found: list[_Found] = []
        for view in _views(text):
            data = view.text.encode("utf-8", "surrogatepass")
            if view.text.isascii():
                char_at = None
            else:
                char_at = []
                for ci, ch in enumerate(view.text):
                    char_at.extend([ci] * len(ch.encode("utf-8", "surrogatepass")))
                char_at.append(len(view.text))
            for kind in self.kinds:
                for s, e, canon in _tokens(kind, data):
                    if char_at is not None:
                        s, e = char_at[s], char_at[e - 1] + 1
                    a, b = view.span(s, e)
                    found.append((a, b, kind.name, canon))
        return found

    def redact(self, text: str | None) -> str | None:
        """``text`` with URL userinfo removed and every identifier token masked."""
        if not text:
            return text
        text = strip_userinfo(text)
        if not self._maybe(text):
            return text
        found = self.find(text)
        if not found:
            return text
        found.sort(key=lambda f: (f[0], -f[1]))
        out: list[str] = []
        cur = 0
        group_end = -1
        for a, b, kind, canon in found:
            if a < group_end:  # overlaps the token being replaced: widen it
                if b > group_end:
                    group_end = b
                continue
            if group_end >= 0:
                cur = group_end
            out.append(text[cur:a])
            out.append(mask(kind, canon))
            group_end = b
        if group_end >= 0:
            cur = group_end
        out.append(text[cur:])
        return "".join(out)


def _tokens(kind: Kind, data: bytes) -> list[tuple[int, int, str]]:
    """(start, end, canonical) of the valid tokens of ``kind`` in ``data``: the scanner's
    bounded tokens, and tokens found with no boundary at every start position."""
    out: list[tuple[int, int, str]] = []
    for m in kind.rx.finditer(data):
        canon = kind.canonical(m.group())
        if canon and kind.valid(canon):
            out.append((m.start(), m.end(), canon))
    search = kind.full.search
    pos, n = 0, len(data)
    while pos < n:
        found = search(data, pos)
        if found is None:
            break
        s, e = found.span()
        canon = kind.canonical(found.group()) if e > s else ""
        if canon and kind.valid(canon):
            out.append((s, e, canon))
            pos = e
        else:
            pos = s + 1
    return out


# --- the process-wide policy ----------------------------------------------------------------

_lock = threading.Lock()
_policy: Policy | None = None


def policy() -> Policy:
    """The process-wide policy: the configured kinds after :func:`configure`, else the
    built-in ones."""
    global _policy
    p = _policy
    if p is None:
        with _lock:
            if _policy is None:
                _policy = Policy.from_config(None)
            p = _policy
    return p


def configure(cfg: MatchingConfig | None) -> Policy:
    """Make the kinds of ``cfg`` (hospital-number pattern, custom kinds) the process-wide
    policy. Called where the config is loaded; forked workers inherit it."""
    global _policy
    p = Policy.from_config(cfg)
    with _lock:
        _policy = p
    return p


def redact(text: str | None) -> str | None:
    """:meth:`Policy.redact` with the process-wide policy."""
    return policy().redact(text)


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")


def redact_line(text: str | None, limit: int = 200) -> str | None:
    """:func:`redact` as one line (control characters become spaces), at most ``limit``
    characters: for names, titles and labels in messages and tables."""
    if text is None:
        return None
    out = redact(_CONTROL.sub(" ", text)) or ""
    return out if len(out) <= limit else out[: limit - 1] + "…"


_DIGIT_RUN = re.compile(r"[0-9\uff10-\uff19]{4,}")


def redact_label(text: str | None, limit: int = 64) -> str | None:
    """Text taken from a document that may be stored (a table header, a SQL column name,
    an opted-in context snippet): :func:`redact_line`, then any remaining run of 4+ digits
    starred (a partial or invalid identifier is not echoed either)."""
    if text is None:
        return None
    out = _DIGIT_RUN.sub(lambda m: "*" * len(m.group()), redact_line(text, 1 << 20) or "")
    out = " ".join(out.split())
    return out if len(out) <= limit else out[: limit - 1] + "…"


_QUOTED = re.compile(r"""(['"]).*?\1""")
# a library's message may quote document content or part of an identifier: a run of 4+
# digits is never echoed in an error line
_DIGITY = re.compile(r"[^\s,;:()\[\]{}<>]*\d{4,}[^\s,;:()\[\]{}<>]*")


def redact_error(text: str | None, limit: int = 160) -> str | None:
    """A library's error text made safe: identifiers masked first, then one line with
    quoted content elided and no digit runs, at most ``limit`` characters."""
    if text is None:
        return None
    text = redact(_CONTROL.sub(" ", text)) or ""
    text = _QUOTED.sub("'…'", text)
    text = _DIGITY.sub("…", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- logs -----------------------------------------------------------------------------------


def _redact_record(record: logging.LogRecord) -> logging.LogRecord:
    try:
        msg = record.getMessage()
    except Exception:  # a bad format string: keep what can be shown
        msg = str(record.msg)
    record.msg, record.args = redact(msg) or "", None
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    return record


_factory_lock = threading.Lock()


def install_log_redaction() -> None:
    """Every log record of this process through the policy: its message (with its
    arguments) and its traceback text are redacted when the record is made, whatever
    handler (ours, Scrapy's, a library's) formats it later. Records below a logger's
    level are never made, so this costs nothing for them. Idempotent."""
    with _factory_lock:
        current = logging.getLogRecordFactory()
        if getattr(current, "_leaksentry_redacts", False):
            return

        def factory(*args: object, **kwargs: object) -> logging.LogRecord:
            return _redact_record(current(*args, **kwargs))

        # a marker on the function object, read back with getattr above
        factory._leaksentry_redacts = True  # type: ignore[attr-defined]
        logging.setLogRecordFactory(factory)


# --- values that are only compared, or re-used by the crawler -------------------------------

_SEALED = "sealed:v1:"
_KEYED = "keyed:v1:"


class Sealer:
    """For stranger-controlled values a store must compare or re-use but not show (feed
    item ids, listing paths, a watched URL to fetch again): text the policy leaves
    unchanged stays as it is; other text becomes a keyed digest (:meth:`key`, compared
    only) or AES-GCM ciphertext (:meth:`seal`, opened again by :meth:`open` to retry a
    fetch). ``secret`` is 32 random bytes kept outside the store."""

    def __init__(self, secret: bytes) -> None:
        import hashlib
        import hmac

        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._digest_key = hmac.new(secret, b"leaksentry seen key", hashlib.sha256).digest()
        self._aead = AESGCM(hmac.new(secret, b"leaksentry seen seal", hashlib.sha256).digest())

    @staticmethod
    def safe(text: str) -> bool:
        return redact(text) == text and not text.startswith((_SEALED, _KEYED))

    def key(self, text: str) -> str:
        """``text``, or its keyed digest when it holds an identifier (or looks sealed)."""
        if self.safe(text):
            return text
        import hashlib
        import hmac

        mac = hmac.new(self._digest_key, text.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return _KEYED + mac.hexdigest()[:40]

    def seal(self, text: str | None) -> str | None:
        """``text``, or its ciphertext when it holds an identifier."""
        if text is None or self.safe(text):
            return text
        import base64
        import os

        nonce = os.urandom(12)
        ct = self._aead.encrypt(nonce, text.encode("utf-8", "surrogatepass"), None)
        return _SEALED + base64.urlsafe_b64encode(nonce + ct).decode()

    def open(self, text: str | None) -> str | None:
        """What :meth:`seal` sealed (text that was never sealed comes back as it is)."""
        if text is None or not text.startswith(_SEALED):
            return text
        import base64

        from cryptography.exceptions import InvalidTag

        try:
            raw = base64.urlsafe_b64decode(text[len(_SEALED):])
            return self._aead.decrypt(raw[:12], raw[12:], None).decode("utf-8",
                                                                         "surrogatepass")
        except (ValueError, InvalidTag):
            return None  # sealed under another key: unusable, never shown
