"""Fictional patient registers for tests, benchmarks and the demo.

Everything here is generated: names from short syllable lists, HKIDs with
valid check characters, hospital numbers in the default ``HN`` layout. It is
never real data, and a seeded :class:`random.Random` makes it repeatable.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from leaksentry.identifiers.hkid import check_char

_SURNAMES = ["CHAN", "WONG", "LEE", "CHEUNG", "LAU", "HO", "NG", "LAM", "LEUNG", "TSANG",
             "YIP", "KWOK", "MAK", "TANG", "FUNG", "SIU", "TAM", "CHOI", "YEUNG", "CHOW"]
_GIVEN = ["Ka Ming", "Siu Fong", "Wai Man", "Mei Ling", "Chi Keung", "Hoi Yan", "Tsz Ho",
          "Wing Sze", "Kin Wah", "Yuk Lan", "Pak Hei", "Ching Yee", "Man Kit", "Sze Wai"]
_ZH_SURNAMES = "陳黃李張劉何吳林梁曾葉郭麥鄧馮蕭譚蔡楊周"
_ZH_GIVEN = "家明小芳偉文美玲志強凱欣子豪詠詩建華玉蘭柏熙靜儀文傑思慧"
_PROCEDURES = ["Appendicectomy", "Cholecystectomy", "Total knee replacement", "Cataract extraction",
               "Coronary angioplasty", "Hernia repair", "Tonsillectomy", "Caesarean section",
               "Hip arthroplasty", "Colonoscopy with polypectomy", "Thyroidectomy"]
# prefixes in real use are mostly single letters; a few two-letter ones appear
_PREFIXES: list[str] = [*"ABCDEGHKMPRVYZ", "WX", "XA", "XB", "XC"]


@dataclass(frozen=True, slots=True)
class Patient:
    ref: str
    name: str
    name_zh: str
    gender: str
    hkid: str  # canonical, e.g. A1234563
    hn: str  # canonical, e.g. HN12345678A
    procedure: str


def hkid(rng: random.Random) -> str:
    body = rng.choice(_PREFIXES) + f"{rng.randrange(1_000_000):06d}"
    return body + check_char(body)


def invalid_hkid(rng: random.Random) -> str:
    """An HKID-shaped string whose check character is wrong."""
    body = rng.choice(_PREFIXES) + f"{rng.randrange(1_000_000):06d}"
    good = check_char(body)
    bad = rng.choice([c for c in "0123456789A" if c != good])
    return body + bad


def hospital_number(rng: random.Random) -> str:
    digits = f"{rng.randrange(10**8):08d}"
    return "HN" + digits + rng.choice("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ")


def patients(n: int, seed: int = 1) -> Iterator[Patient]:
    """``n`` fictional patients with distinct HKIDs and hospital numbers; refs are 1..n."""
    rng = random.Random(seed)
    seen_id: set[str] = set()
    seen_hn: set[str] = set()
    i = 0
    while i < n:
        h, hn = hkid(rng), hospital_number(rng)
        if h in seen_id or hn in seen_hn:
            continue
        seen_id.add(h)
        seen_hn.add(hn)
        i += 1
        yield Patient(
            ref=str(i),
            name=f"{rng.choice(_SURNAMES)} {rng.choice(_GIVEN)}",
            name_zh=rng.choice(_ZH_SURNAMES) + "".join(rng.sample(_ZH_GIVEN, 2)),
            gender=rng.choice("MF"),
            hkid=h,
            hn=hn,
            procedure=rng.choice(_PROCEDURES),
        )


def written_hkid(canonical: str, rng: random.Random) -> str:
    """One of the forms HKIDs are written in the wild: brackets, space, lower case, full-width."""
    body, check = canonical[:-1], canonical[-1]
    form = rng.randrange(5)
    if form == 0:
        return f"{body}({check})"
    if form == 1:
        return f"{body} {check}"
    if form == 2:
        return canonical.lower()
    if form == 3:
        return "".join(chr(ord(c) + 0xFEE0) for c in f"{body}({check})")
    return canonical


_FULL = {c: chr(ord(c) + 0xFEE0) for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
          "abcdefghijklmnopqrstuvwxyz()[]-/"}
#: how an HKID's check character is written after the digits ("{}" is the character)
HKID_CHECK_FORMS = ("{}", " {}", "({})", "({}) ", " ({})", "( {} )", "[{}]", " [{}]", "-{}",
                    " - {}", "/{}", " / {}", "（{}）", "［{}］", "－{}", "／{}", " ／ {}")


def hkid_written_forms(canonical: str) -> list[str]:
    """Every written form of an HKID the matcher accepts (issue 13): the check character
    bare, in () or [], after - or /, with spaces, ASCII or full-width, upper or lower
    case, a space between letters and digits or not."""
    body, check = canonical[:-1], canonical[-1]
    letters = body[:-6]
    out: list[str] = []
    for case in (str.upper, str.lower):
        for gap in ("", " "):
            for fmt in HKID_CHECK_FORMS:
                out.append(case(letters + gap + body[-6:] + fmt.format(check)).strip())
    for fmt in ("({})", "[{}]", "-{}", "/{}", "{}"):
        out.append("".join(_FULL.get(c, c) for c in body + fmt.format(check)))
    return list(dict.fromkeys(out))


def written_hn(canonical: str, rng: random.Random) -> str:
    """A hospital number as people write it: bracketed check, spaces, lower case, full-width."""
    prefix, digits, check = canonical[:2], canonical[2:-1], canonical[-1]
    form = rng.randrange(5)
    if form == 0:
        return f"{prefix}{digits}({check})"
    if form == 1:
        return f"{prefix} {digits} {check}"
    if form == 2:
        return canonical.lower()
    if form == 3:
        return "".join(chr(ord(c) + 0xFEE0) for c in canonical)
    return canonical


REGISTER_COLUMNS = ["ref", "name", "name_zh", "gender", "hkid", "hn", "procedure"]


def register_rows(n: int, seed: int = 1) -> Iterator[list[str]]:
    """Rows for a register CSV (header first) with the columns in :data:`REGISTER_COLUMNS`."""
    yield list(REGISTER_COLUMNS)
    for p in patients(n, seed):
        yield [p.ref, p.name, p.name_zh, p.gender, p.hkid, p.hn, p.procedure]


def table_image(rows: list[list[str]], dpi: int = 150, *,
                inches: tuple[float, float] = (8.27, 11.69), font_pt: float = 10.0) -> Any:
    """A page (A4 by default) with ``rows`` drawn as a table, black on white, as a scan or
    a screenshot shows it: for the OCR tests and benchmark. Columns are as wide as their
    widest cell. Returns a greyscale PIL image (Pillow's built-in font, so it looks the same
    on every machine)."""
    from PIL import Image, ImageDraw, ImageFont

    pt = dpi / 72
    font = ImageFont.load_default(size=max(6, round(font_pt * pt)))
    img = Image.new("L", (round(inches[0] * dpi), round(inches[1] * dpi)), 255)
    draw = ImageDraw.Draw(img)
    widths = [max(draw.textlength(r[c], font=font) for r in rows if c < len(r))
              for c in range(max(map(len, rows)))]
    y = round(36 * pt)
    for row in rows:
        x = round(28 * pt)
        for c, cell in enumerate(row):
            draw.text((x, y), cell, fill=0, font=font)
            x += round(widths[c] + 14 * pt)
        y += round(font_pt * 1.6 * pt)
    return img
