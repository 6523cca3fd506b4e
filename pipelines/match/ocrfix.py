"""Undo OCR's usual misreadings of HKIDs, only where the check character then agrees.

Tesseract reads ``R021026(8)`` as ``RO21026(8)`` or ``£001861(2)`` for ``E001861(2)``:
a letter inside the digit run, a digit or a look-alike in the letter prefix. Such a token is
not an HKID to the matcher, so the record would be missed. :func:`correct_hkids` rewrites a
near-HKID token to the one reading whose check character validates; the matcher then looks
it up in the register like any other token.

It lives here, beside the check-digit rule it depends on, rather than in the extractor: the
extractor only knows it has OCR text and calls it on each OCR'd page; what an HKID is stays
in pipelines/match. It is a pass over text (not a change to the kinds' patterns), so the
written forms the matcher accepts stay exactly those of :mod:`.kinds`.

Bounded, so that it never makes an HKID out of text that is not shaped like one:

- only tokens shaped like an HKID: 1-2 prefix characters, 6 run characters and a check
  character (bare, or in brackets OCR may have read as ``[]``/``{}``), between
  non-alphanumeric neighbours; the prefix must hold a character that is not a digit (so a
  phone number such as ``23456789`` is never read as ``Z345678(9)``);
- each character has at most two readings (look-alike tables below), at most
  :data:`MAX_CHANGES` characters are changed, at most two ways of splitting a token;
- a token already valid is left as it is; a token is rewritten only when exactly one
  reading validates (two different valid readings: ambiguous, left alone).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import product

from pipelines.match.hkid import is_valid

#: characters changed per token at most (the other run digits must be read right)
MAX_CHANGES = 2

# a look-alike read in the digit run (or as the check character) -> the digit it stands for
_AS_DIGIT = {"O": "0", "o": "0", "Q": "0", "D": "0", "I": "1", "l": "1", "i": "1",
             "Z": "2", "z": "2", "S": "5", "s": "5", "G": "6", "b": "6", "T": "7",
             "B": "8", "g": "9", "q": "9"}
# a look-alike read in the letter prefix -> the letters it may stand for
_AS_LETTER = {"0": ("O",), "1": ("I",), "2": ("Z",), "5": ("S",), "6": ("G",), "8": ("B",),
              "£": ("E",), "€": ("E",)}

_C = r"[A-Za-z0-9]"
# the letters and digits of a token (single spaces allowed between them), then the check
# character in brackets OCR may have read as "[]" or "{}" (or lost the closing one); a bare
# check character is the body's last one
_TOKEN = re.compile(rf"(?<![A-Za-z0-9£€])(?P<body>[A-Za-z0-9£€](?:{_C}| (?={_C})){{6,11}})"
                    rf"(?: ?[(\[{{] ?(?P<bracketed>{_C}) ?[)\]}}]?)?(?!{_C})")
_START = re.compile(r"(?<![A-Za-z0-9£€])[A-Za-z0-9£€]")


Options = tuple[tuple[str, bool], ...]  # (reading, changed) pairs for one character


def _letter(ch: str) -> Options:
    if ch == "l":  # lower-case L: an I as often as an L
        return (("L", False), ("I", True))
    if ch.isascii() and ch.isalpha():
        return ((ch.upper(), False),)
    return tuple((a, True) for a in _AS_LETTER.get(ch, ()))


def _digit(ch: str) -> Options:
    if ch.isascii() and ch.isdigit():
        return ((ch, False),)
    return ((_AS_DIGIT[ch], True),) if ch in _AS_DIGIT else ()


def _check(ch: str) -> Options:
    return (("A", False),) if ch in "Aa" else _digit(ch)


def _readings(prefix: str, run: str, check: str, dropped: int = 0) -> list[str]:
    """Canonical readings of one parse with 1..MAX_CHANGES characters changed (a dropped
    character counts as one) that validate."""
    if all(c.isdigit() for c in prefix):
        return []
    slots = [*map(_letter, prefix), *map(_digit, run), _check(check)]
    if not all(slots) or dropped + sum(all(c for _, c in s) for s in slots) > MAX_CHANGES:
        return []
    out = []
    for combo in product(*slots):  # more than one combination only for an "l" prefix
        changed = dropped + sum(c for _, c in combo)
        if 0 < changed <= MAX_CHANGES:
            canonical = "".join(r for r, _ in combo)
            if is_valid(canonical):
                out.append(canonical)
    return out


def _stutter(a: str, b: str) -> bool:
    """OCR read one glyph as two: "xX" for "X", "G6" for "6" (never two digits)."""
    return a.isalpha() and (a.upper() == b.upper() or _AS_DIGIT.get(a) == b)


def _parses(chars: list[tuple[str, bool]], check: str, bare: bool
            ) -> Iterator[tuple[str, str, str, int]]:
    """(prefix, run, check, characters dropped) for each way of reading the token's
    characters (with whether a space came before each) as 1-2 letters and 6 digits:
    as written, or with one doubled glyph dropped. A space is allowed only between the
    prefix and the run (and before a bare check character), as in :mod:`.kinds`."""
    variants = [(chars, 0)]
    variants += [(chars[:j] + chars[j + 1:], 1) for j in range(len(chars) - 1)
                 if _stutter(chars[j][0], chars[j + 1][0]) and not chars[j + 1][1]]
    for cs, dropped in variants:
        n = len(cs) - 6
        if n not in (1, 2) or any(space for i, (_, space) in enumerate(cs) if i != n):
            continue
        text = "".join(c for c, _ in cs)
        yield text[:n], text[n:], check, dropped


def _at(text: str, pos: int) -> tuple[int, str] | None:
    """The end and the corrected form of a near-HKID token starting at ``pos``, if exactly
    one reading of it validates; None when it is valid as written, or not correctable."""
    m = _TOKEN.match(text, pos)
    if not m:
        return None
    body, check = m["body"], m["bracketed"]
    bare = check is None
    if bare:
        body, check = body[:-1].rstrip(), body[-1]
    chars: list[tuple[str, bool]] = []  # (character, a space came before it)
    space = False
    for c in body:  # the pattern allows single spaces only
        if c == " ":
            space = True
        else:
            chars.append((c, space))
            space = False
    found: set[str] = set()
    for prefix, run, chk, dropped in _parses(chars, check, bare):
        if not dropped and is_valid((prefix + run + chk).upper()):
            return None  # an HKID already: the matcher reads it as it is
        found.update(_readings(prefix, run, chk, dropped))
    if len(found) != 1:
        return None
    canonical = found.pop()
    return m.end(), f"{canonical[:-1]}({canonical[-1]})"


def correct_hkids(text: str) -> tuple[str, int]:
    """``text`` with near-HKID tokens rewritten where exactly one reading validates, and the
    number of tokens rewritten. Text without such tokens comes back unchanged."""
    out: list[str] = []
    last = fixed = 0
    for start in _START.finditer(text):
        pos = start.start()
        if pos < last:
            continue
        hit = _at(text, pos)
        if hit is None:
            continue
        end, corrected = hit
        out.append(text[last:pos])
        out.append(corrected)
        last = end
        fixed += 1
    if not fixed:
        return text, 0
    out.append(text[last:])
    return "".join(out), fixed
