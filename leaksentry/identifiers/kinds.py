"""Identifier kinds: how each is written, its canonical form and checksum.

The bottom layer's one definition of the identifier grammar: the scanner
(``pipelines/match``) compiles these patterns for hyperscan or ``re``, and the
redaction policy (:mod:`leaksentry.redaction`) uses the same patterns to mask
identifiers in stranger-controlled text. Masks are made by
:func:`leaksentry.redaction.mask`.

Patterns are matched against UTF-8 *bytes* (the scanner encodes text once
and scans it with hyperscan or ``re``). The built-in ``hkid`` and ``hn``
patterns spell out the full-width forms (``Ａ１２３４５６（３）``) as byte
sequences, so no NFKC pass over the whole text is needed; only a candidate
token is normalised. Every pattern is bounded: it never matches inside a
longer run of ASCII or full-width letters and digits.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from leaksentry.config.matching import KindConfig, MatchingConfig
from leaksentry.identifiers.checksums import CHECKSUMS, CHECKSUMS_BYTES
from leaksentry.identifiers.hkid import valid_many_bytes as hkid_valid_many

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

# --- byte-level building blocks (ASCII | full-width, as UTF-8) -------------------------------
_FW_UPPER = rb"\xef\xbc[\xa1-\xba]"  # Ａ-Ｚ  U+FF21-FF3A
_FW_LOWER = rb"\xef\xbd[\x81-\x9a]"  # ａ-ｚ  U+FF41-FF5A
_FW_DIGIT = rb"\xef\xbc[\x90-\x99]"  # ０-９  U+FF10-FF19
#: any full-width letter or digit (what the narrow patterns below leave out)
FW_ALNUM = rb"\xef\xbc[\x90-\x99\xa1-\xba]|" + _FW_LOWER
SPACE = rb"(?:[ \t]|\xe3\x80\x80|\xc2\xa0)?"  # optional: space, tab, ideographic space, NBSP
OPEN = rb"(?:\(|\xef\xbc\x88)"  # ( or （
CLOSE = rb"(?:\)|\xef\xbc\x89)"  # ) or ）
OPEN_SQ = rb"(?:\[|\xef\xbc\xbb)"  # [ or ［
CLOSE_SQ = rb"(?:\]|\xef\xbc\xbd)"  # ] or ］
#: a separator before an HKID check character: - / or their full-width forms (－ ／)
CHECK_SEP = rb"(?:[-/]|\xef\xbc[\x8d\x8f])"


@dataclass(frozen=True)
class _Blocks:
    """The character classes of the built-in patterns. ``wide``: ASCII or full-width
    letters and digits (the real patterns); narrow: ASCII letters and digits only
    (brackets and spaces may still be full-width), which hyperscan runs ~3x faster on
    text with no full-width letter or digit in it (see :class:`~.finder.Finder`)."""

    wide: bool

    def _or(self, ascii_: bytes, fw: bytes) -> bytes:
        return rb"(?:" + ascii_ + (rb"|" + fw if self.wide else b"") + rb")"

    @property
    def letter(self) -> bytes:
        return self._or(rb"[A-Za-z]", _FW_UPPER + rb"|" + _FW_LOWER)

    @property
    def digit(self) -> bytes:
        return self._or(rb"[0-9]", _FW_DIGIT)

    @property
    def alnum(self) -> bytes:
        return self._or(rb"[A-Za-z0-9]", FW_ALNUM)

    @property
    def hkid_check(self) -> bytes:
        return self._or(rb"[0-9Aa]", rb"\xef\xbc[\x90-\x99\xa1]|\xef\xbd\x81")

    @property
    def hn_prefix(self) -> bytes:
        return self._or(rb"[Hh][Nn]", rb"\xef\xbc\xa8\xef\xbc\xae|\xef\xbd\x88\xef\xbd\x8e")


def _bracketed(check: bytes) -> bytes:
    return OPEN + SPACE + check + SPACE + CLOSE


def _checked(check: bytes) -> bytes:
    """A check character, bare or in (optionally spaced) brackets."""
    return rb"(?:" + _bracketed(check) + rb"|" + check + rb")"


def _hkid_closed(check: bytes) -> bytes:
    """An HKID check character in round or square brackets (ASCII or full-width)."""
    return (rb"(?:" + OPEN + SPACE + check + SPACE + CLOSE + rb"|"
            + OPEN_SQ + SPACE + check + SPACE + CLOSE_SQ + rb")")


def _hkid_open(check: bytes) -> bytes:
    """An HKID check character bare or after ``-`` or ``/`` (ASCII or full-width)."""
    return rb"(?:" + CHECK_SEP + SPACE + check + rb"|" + check + rb")"


def _hkid(b: _Blocks) -> tuple[bytes, bytes, bytes]:
    """(pattern, closed variant, open variant = pattern minus the closed one). The check
    character is written bare, in ``()`` or ``[]``, or after ``-`` or ``/``, each also
    full-width and with spaces around (issue 13): ``A123456(3)``, ``A123456 [3]``,
    ``A123456-3``, ``A123456 / 3``, ``Ａ１２３４５６［３］``."""
    body = b.letter + rb"{1,2}" + SPACE + b.digit + rb"{6}" + SPACE
    closed, open_ = _hkid_closed(b.hkid_check), _hkid_open(b.hkid_check)
    return body + rb"(?:" + closed + rb"|" + open_ + rb")", body + closed, body + open_


def _hn(b: _Blocks) -> tuple[bytes, bytes, bytes]:
    body = b.hn_prefix + SPACE + b.digit + rb"{6,10}"
    return (body + rb"(?:" + SPACE + _checked(b.alnum) + rb")?",
            body + SPACE + _bracketed(b.alnum),
            body + rb"(?:" + SPACE + b.alnum + rb")?")


_WIDE, _NARROW = _Blocks(True), _Blocks(False)
LETTER, DIGIT, ALNUM, HKID_CHECK = _WIDE.letter, _WIDE.digit, _WIDE.alnum, _WIDE.hkid_check
HKID_PATTERN, HKID_CLOSED, HKID_OPEN = _hkid(_WIDE)
HN_PATTERN, HN_CLOSED, HN_OPEN = _hn(_WIDE)

# exact boundaries for the `re` engine (fixed-width look-behinds, one per byte length)
_NOT_AFTER = rb"(?<![A-Za-z0-9])(?<!\xef\xbc[\x90-\x99\xa1-\xba])(?<!" + _FW_LOWER + rb")"
_NOT_BEFORE = rb"(?!" + ALNUM + rb")"
# a token ending in a closing bracket is complete whatever follows: "A123456(3)The"
_CLOSED_OR_NOT_BEFORE = (rb"(?:(?<=\))|(?<=\xef\xbc\x89)|(?<=\])|(?<=\xef\xbc\xbd)|"
                         + _NOT_BEFORE + rb")")
# hyperscan has no look-arounds: it consumes one non-alnum byte on each side and the
# scanner checks the full-width neighbours (see :func:`fullwidth_alnum_before/after`)
HS_EDGE = rb"[^A-Za-z0-9]"

#: what the canonical form of an HKID drops: spaces, separators, brackets
HKID_REMOVE = " -/()[]."


def _hs_edged(edged: bytes, closed: bytes | None) -> list[tuple[bytes, bool]]:
    """The hyperscan expressions of a kind: ``edged`` between boundary bytes, and the
    variant ending in a closing bracket (if any) with a leading boundary only."""
    out = [(HS_EDGE + rb"(?:" + edged + rb")" + HS_EDGE, True)]
    if closed is not None:
        out.append((HS_EDGE + rb"(?:" + closed + rb")", False))
    return out


def fullwidth_alnum_before(buf: bytes, pos: int) -> bool:
    """True when the character ending at ``pos`` is a full-width letter or digit."""
    if pos < 3 or buf[pos - 3] != 0xEF:
        return False
    b1, b2 = buf[pos - 2], buf[pos - 1]
    return (b1 == 0xBC and (0x90 <= b2 <= 0x99 or 0xA1 <= b2 <= 0xBA)) or (
        b1 == 0xBD and 0x81 <= b2 <= 0x9A)


def fullwidth_alnum_after(buf: bytes, pos: int) -> bool:
    """True when the character starting at ``pos`` is a full-width letter or digit."""
    if pos + 3 > len(buf) or buf[pos] != 0xEF:
        return False
    b1, b2 = buf[pos + 1], buf[pos + 2]
    return (b1 == 0xBC and (0x90 <= b2 <= 0x99 or 0xA1 <= b2 <= 0xBA)) or (
        b1 == 0xBD and 0x81 <= b2 <= 0x9A)


@dataclass(slots=True)
class Kind:
    """One identifier kind, compiled for scanning and for reading a register."""

    name: str
    pattern: bytes  # the token itself, no boundaries
    checksum: str = "none"
    upper: bool = True
    remove: str = " -/()."
    column: str | None = None
    hs_ok: bool = True  # False: the pattern is not hyperscan-compatible, use `re` for it
    # the pattern's variant ending in a closing bracket (built-in kinds): such a token
    # needs no boundary after it
    closed: bytes | None = None
    # what a canonical form looks like (built-in kinds): lets a clean ASCII register cell
    # skip the written-form regex
    canonical_shape: bytes | None = None
    # the pattern's other variants (``pattern`` = ``open`` | ``closed``): hyperscan needs
    # only these with a trailing boundary, the closed ones are reported by ``closed``
    open: bytes | None = None
    # (pattern, closed, open) with ASCII letters and digits only (built-in kinds): the
    # finder's fast first pass on text without full-width letters or digits
    narrow: tuple[bytes, bytes, bytes] | None = None
    rx: re.Pattern[bytes] = field(init=False)  # bounded, for the `re` engine
    full: re.Pattern[bytes] = field(init=False)  # whole register cell
    valid: Callable[[str], bool] = field(init=False)
    valid_b: Callable[[bytes], bool] = field(init=False)
    prefix: bytes = field(init=False)  # b"kind:", the start of the HMAC input
    _ascii_table: dict[int, None] = field(init=False)
    _delete: bytes = field(init=False)
    _shape: re.Pattern[bytes] | None = field(init=False)
    _fast: bool = field(init=False)
    _delete_ws: bytes = field(init=False)

    def __post_init__(self) -> None:
        after = _NOT_BEFORE if self.closed is None else _CLOSED_OR_NOT_BEFORE
        self.rx = re.compile(_NOT_AFTER + rb"(?:" + self.pattern + rb")" + after)
        self.full = re.compile(rb"(?:" + self.pattern + rb")")
        self.valid = CHECKSUMS[self.checksum]
        self.valid_b = CHECKSUMS_BYTES[self.checksum]
        self.prefix = self.name.encode() + b":"
        self._ascii_table = {ord(c): None for c in self.remove + "\t"}
        self._delete = bytes(ord(c) for c in self.remove + "\t" if ord(c) < 128)
        self._shape = re.compile(self.canonical_shape) if self.canonical_shape else None
        self._delete_ws = self._delete + b" \r\x0b\x0c"
        # the hkid checksum validates the whole shape itself
        self._fast = self._shape is not None or self.checksum == "hkid"

    @property
    def delete(self) -> bytes:
        """The ASCII characters removed from a canonical form."""
        return self._delete

    @property
    def has_checksum(self) -> bool:
        return self.checksum != "none"

    @property
    def hs_expressions(self) -> list[tuple[bytes, bool]]:
        """(expression, consumes a trailing boundary byte) for hyperscan."""
        edged = self.open if self.closed is not None and self.open is not None else self.pattern
        return _hs_edged(edged, self.closed)

    @property
    def hs_narrow_expressions(self) -> list[tuple[bytes, bool]] | None:
        """:attr:`hs_expressions` of the narrow variant (same order), if the kind has one."""
        if self.narrow is None:
            return None
        _, closed, open_ = self.narrow
        return _hs_edged(open_, closed)

    def canonical(self, token: bytes) -> str:
        """Canonical form of a token found in text: NFKC, upper-case, separators removed."""
        if token.isascii():
            text = token.decode("ascii")
        else:
            text = unicodedata.normalize("NFKC", token.decode("utf-8", "replace"))
        if self.upper:
            text = text.upper()
        return text.translate(self._ascii_table)

    def canonical_b(self, token: bytes) -> bytes:
        """:meth:`canonical` as bytes, without decoding ASCII tokens (the hot path)."""
        if token.isascii():
            if self.upper:
                token = token.upper()
            return token.translate(None, self._delete)
        return self.canonical(token).encode("utf-8")

    def canonical_many(self, tokens: list[bytes]) -> list[bytes]:
        """:meth:`canonical_b` of every token: one C-level upper/translate over the joined
        tokens, then only the non-ASCII (full-width) ones one by one."""
        if not tokens:
            return []
        joined = b"\n".join(tokens)
        if b"\n" in self._delete or joined.count(b"\n") != len(tokens) - 1:
            return [self.canonical_b(t) for t in tokens]
        if self.upper:
            joined = joined.upper()
        out = joined.translate(None, self._delete).split(b"\n")
        if not joined.isascii():
            fix = self.canonical_b
            for i, t in enumerate(tokens):
                if not t.isascii():
                    out[i] = fix(t)
        return out

    def valid_many(self, canonicals: list[bytes]) -> NDArray[np.bool_]:
        """:attr:`valid_b` of every canonical form, as a bool array (vectorised for hkid)."""
        import numpy as np  # deferred for start-up: redacting a line needs no numpy

        if self.checksum == "hkid":
            return hkid_valid_many(canonicals)
        if self.checksum == "none":
            return np.ones(len(canonicals), dtype=bool)
        return np.fromiter(map(self.valid_b, canonicals), dtype=bool, count=len(canonicals))

    def canonical_cell(self, value: str) -> str | None:
        """Canonical form of a register cell, or None if it is not this kind (or fails its
        checksum). The whole cell must be one identifier."""
        value = value.strip()
        if not value:
            return None
        raw = value.encode("utf-8", "replace")
        if not self.full.fullmatch(raw):
            return None
        canonical = self.canonical(raw)
        return canonical if canonical and self.valid(canonical) else None

    def canonical_cell_b(self, value: str) -> bytes | None:
        """:meth:`canonical_cell` as bytes, with a fast path for clean ASCII cells (the
        register build reads a million rows)."""
        raw = value.strip().encode("utf-8", "replace")
        if not raw:
            return None
        if self._fast and raw.isascii():
            c = raw.upper() if self.upper else raw
            c = c.translate(None, self._delete)
            if self._shape is not None and not self._shape.fullmatch(c):
                return None
            return c if self.valid_b(c) else None
        canonical = self.canonical_cell(value)
        return canonical.encode("utf-8") if canonical is not None else None

    def canonical_cells_b(self, values: list[str]) -> list[bytes | None]:
        """:meth:`canonical_cell_b` for a column chunk: clean ASCII chunks are upper-cased
        and stripped in one C-level pass (the register build's hot path)."""
        if self._fast and self.upper:
            joined = "\n".join(values)
            if joined.isascii():
                cells = joined.encode("ascii").upper().translate(None, self._delete_ws)
                parts = cells.split(b"\n")
                if len(parts) == len(values):  # no cell had a newline of its own
                    valid, shape = self.valid_b, self._shape
                    if shape is None:
                        return [c if c and valid(c) else None for c in parts]
                    fm = shape.fullmatch
                    return [c if c and fm(c) and valid(c) else None for c in parts]
        return [self.canonical_cell_b(v) for v in values]

    def message(self, canonical: str) -> bytes:
        """The HMAC input: ``kind:canonical``."""
        return self.prefix + canonical.encode()


def _custom(cfg: KindConfig) -> Kind:
    pat = cfg.pattern.encode()
    return Kind(cfg.name, pat, cfg.checksum, cfg.upper, cfg.remove, cfg.column,
                hs_ok=_hs_compatible(pat))


def _hs_compatible(pattern: bytes) -> bool:
    """Look-arounds and back-references are `re`-only; such a kind is scanned with `re`."""
    return not re.search(rb"\(\?[=!<]|\\[1-9]|\(\?P=", pattern)


def build_kinds(cfg: MatchingConfig | None = None) -> list[Kind]:
    """The kinds to scan for, in a fixed order: hkid, hn (unless disabled), custom kinds."""
    cfg = cfg or MatchingConfig()
    kinds = [Kind("hkid", HKID_PATTERN, "hkid", remove=HKID_REMOVE, closed=HKID_CLOSED,
                  open=HKID_OPEN, narrow=_hkid(_NARROW))]
    if cfg.hn.enabled:
        if cfg.hn.pattern is None:
            kinds.append(Kind("hn", HN_PATTERN, cfg.hn.checksum, cfg.hn.upper, cfg.hn.remove,
                              closed=HN_CLOSED, open=HN_OPEN, narrow=_hn(_NARROW),
                              canonical_shape=rb"HN[0-9]{6,10}[0-9A-Za-z]?" if cfg.hn.upper
                              else None))
        else:
            pat = cfg.hn.pattern.encode()
            kinds.append(Kind("hn", pat, cfg.hn.checksum, cfg.hn.upper, cfg.hn.remove,
                              hs_ok=_hs_compatible(pat)))
    kinds.extend(_custom(k) for k in cfg.kinds)
    return kinds
