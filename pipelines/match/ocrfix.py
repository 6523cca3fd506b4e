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
- each character has one reading (two for a lower-case ``l`` prefix: L or I); a token is
  read as written or with one doubled glyph dropped (``AG662345`` for ``A662345``); at
  most :data:`MAX_CHANGES` characters change, and only one when a space splits the token
  (``M O12345(6)`` may be a sex column before an ID);
- a token already valid is left as it is, and so is any token overlapping it; a token is
  rewritten only when exactly one reading validates, and no overlapping token's reading
  needs as few changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import product

from leaksentry.identifiers.hkid import is_valid

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


def _readings(prefix: str, run: str, check: str, spent: int = 0) -> dict[str, int]:
    """Canonical readings of one parse that validate, with their number of changes
    (``spent`` + the characters changed, at most MAX_CHANGES)."""
    if all(c.isdigit() for c in prefix):
        return {}
    slots = [*map(_letter, prefix), *map(_digit, run), _check(check)]
    if not all(slots) or spent + sum(all(c for _, c in s) for s in slots) > MAX_CHANGES:
        return {}
    out: dict[str, int] = {}
    for combo in product(*slots):  # more than one combination only for an "l" prefix
        changed = spent + sum(c for _, c in combo)
        if 0 < changed <= MAX_CHANGES:
            canonical = "".join(r for r, _ in combo)
            if is_valid(canonical):
                out[canonical] = min(changed, out.get(canonical, changed))
    return out


def _stutter(a: str, b: str) -> bool:
    """OCR read one glyph as two: "xX" for "X", "G6" for "6" (never two digits)."""
    return a.isalpha() and (a.upper() == b.upper() or _AS_DIGIT.get(a) == b)


def _parses(chars: list[tuple[str, bool]], check: str
            ) -> Iterator[tuple[str, str, str, int, int]]:
    """(prefix, run, check, characters dropped, changes spent) for each way of reading the token's
    characters (with whether a space came before each) as 1-2 letters and 6 digits:
    as written, or with one doubled glyph dropped. A space is allowed only between the
    prefix and the run (and before a bare check character), as in :mod:`.kinds`; such a
    token may be a short word joined to what follows ("M", "id"), so it gets no dropped
    glyph and at most one changed character (the changes spent start at MAX_CHANGES - 1)."""
    variants = [(chars, 0)]
    variants += [(chars[:j] + chars[j + 1:], 1) for j in range(len(chars) - 1)
                 if _stutter(chars[j][0], chars[j + 1][0])
                 and not chars[j][1] and not chars[j + 1][1]]
    for cs, dropped in variants:
        n = len(cs) - 6
        if n not in (1, 2) or any(space for i, (_, space) in enumerate(cs) if i != n):
            continue
        if cs[n][1] and dropped:  # a spaced token ("M A123456"): read as written or nearly
            continue
        text = "".join(c for c, _ in cs)
        yield text[:n], text[n:], check, dropped, MAX_CHANGES - 1 if cs[n][1] else dropped


def _at(text: str, pos: int) -> tuple[int, str | None, int] | None:
    """(end, corrected form, changes) of a near-HKID token starting at ``pos``: the
    corrected form is None (0 changes) when the token is an HKID as written; None when no
    single reading validates."""
    m = _TOKEN.match(text, pos)
    if not m:
        return None
    body, check = m["body"], m["bracketed"]
    if check is None:  # bare: the body's last character
        body, check = body[:-1].rstrip(), body[-1]
    chars: list[tuple[str, bool]] = []  # (character, a space came before it)
    space = False
    for c in body:  # the pattern allows single spaces only
        if c == " ":
            space = True
        else:
            chars.append((c, space))
            space = False
    found: dict[str, int] = {}
    for prefix, run, chk, dropped, spent in _parses(chars, check):
        if not dropped and is_valid((prefix + run + chk).upper()):
            return m.end(), None, 0  # an HKID already: the matcher reads it as it is
        for canonical, changes in _readings(prefix, run, chk, spent).items():
            found[canonical] = min(changes, found.get(canonical, changes))
    if len(found) != 1:
        return None
    (canonical, changes), = found.items()
    return m.end(), f"{canonical[:-1]}({canonical[-1]})", changes


def correct_hkids(text: str) -> tuple[str, int]:
    """``text`` with near-HKID tokens rewritten where exactly one reading validates, and the
    number of tokens rewritten. Text without such tokens comes back unchanged.

    Tokens may overlap ("F Z9402S5(2)" read from the "F" of the column before, or from the
    "Z"): a reading is used only when no overlapping one needs as few changes or fewer,
    and an HKID valid as written (no change) always wins."""
    found = [(start.start(), *hit) for start in _START.finditer(text)
             if (hit := _at(text, start.start())) is not None]
    keep = [(a, end, form) for a, end, form, changes in found if form is not None and not any(
        b < end and a < other_end and changes >= other_changes
        for b, other_end, _, other_changes in found if b != a)]
    if not keep:
        return text, 0
    out: list[str] = []
    last = 0
    for a, end, form in keep:  # in text order and, by the rule above, not overlapping
        out += [text[last:a], form]
        last = end
    out.append(text[last:])
    return "".join(out), len(keep)
