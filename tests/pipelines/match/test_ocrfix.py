"""OCR misreadings of HKIDs are undone only where the check character then validates, and
never make an HKID out of text that is not shaped like one."""

from __future__ import annotations

import random
import re
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from leaksentry.identifiers.hkid import is_valid
from leaksentry.synth import hkid, invalid_hkid, patients
from pipelines.match.ocrfix import MAX_CHANGES, correct_hkids

# digit -> how OCR misreads it inside the digit run
_MISREAD = {"0": "O", "1": "I", "5": "S", "8": "B", "2": "Z", "6": "G"}
_TOKEN = re.compile(r"[A-Z]{1,2}\d{6}\([0-9A]\)")


def written(canonical: str) -> str:
    return f"{canonical[:-1]}({canonical[-1]})"


def _misread(canonical: str, rng: random.Random, k: int = 1) -> str | None:
    """The HKID written with ``k`` look-alike letters in its digit run (None if it has no
    such digit)."""
    n = len(canonical) - 7
    spots = [i for i in range(n, n + 6) if canonical[i] in _MISREAD]
    if len(spots) < k:
        return None
    chars = list(canonical)
    for i in rng.sample(spots, k):
        chars[i] = _MISREAD[chars[i]]
    return written("".join(chars))


def test_each_usual_confusion_is_undone_in_a_table_line():
    rng = random.Random(5)
    done = set()
    for p in patients(400, seed=11):
        bad = _misread(p.hkid, rng)
        if bad is None:
            continue
        line = f"{p.name} {p.gender} {bad} {p.hn} {p.procedure}"
        fixed, n = correct_hkids(line)
        assert n == 1 and written(p.hkid) in fixed, p.ref
        assert fixed.replace(written(p.hkid), bad) == line  # nothing else touched
        done.update(set(bad) & set(_MISREAD.values()))
    assert done == set(_MISREAD.values())


def test_prefix_and_check_confusions_and_brackets():
    as_digit = {"O": "0", "I": "1", "S": "5", "B": "8", "Z": "2", "G": "6"}
    cases = 0
    for p in patients(300, seed=12):
        h = p.hkid
        if len(h) == 9 and h[1] in as_digit:  # "XB" read as "X8"
            token = f"{h[0]}{as_digit[h[1]]}{h[2:8]}({h[-1]})"
            assert correct_hkids(f"x {token} y") == (f"x {written(h)} y", 1)
            cases += 1
        if len(h) == 8 and h[0] in as_digit:
            # a one-letter prefix read as a digit leaves only digits: a number, not an HKID
            token = f"{as_digit[h[0]]}{h[1:7]}({h[-1]})"
            assert correct_hkids(token) == (token, 0)
        if h[-1] == "0":
            assert correct_hkids(f"{h[:-1]}(O)")[0] == written(h)
            cases += 1
        assert correct_hkids(f"{h[:-1]}[{h[-1]}]")[1] == 0 or is_valid(h)  # valid as written
        assert correct_hkids(f"{h[:-1]} {h[-1]}")[1] == 0
    assert cases > 10


def test_doubled_glyph_and_spaces():
    rng = random.Random(2)
    for _ in range(50):
        h = hkid(rng)
        n = len(h) - 7
        if h[n] == "6" and n == 1 and not is_valid(f"{h[0]}G{h[1:]}"):  # "A6" read as "AG6"
            assert correct_hkids(f"{h[0]}G{h[1:7]}({h[-1]})")[0] == written(h)
        if n == 2:  # "WX..." read as "WxX..."
            assert correct_hkids(f"{h[0]}{h[1].lower()}{h[1:8]}({h[-1]})")[0] == written(h)
    h = next(x.hkid for x in patients(50, seed=1) if len(x.hkid) == 8 and "0" in x.hkid[1:7])
    spaced = f"{h[0]} {h[1:7].replace('0', 'O', 1)} ({h[-1]})"
    assert correct_hkids(spaced)[0] == written(h)


def test_no_correction_where_the_check_digit_does_not_validate():
    rng = random.Random(9)
    tried = 0
    for _ in range(300):
        bad = invalid_hkid(rng)
        token = _misread(bad, rng)
        if token is None:
            continue
        tried += 1
        fixed, n = correct_hkids(f"id {token} seen")
        # one look-alike and a wrong check character: no reading validates
        assert n == 0 and fixed == f"id {token} seen"
    assert tried > 100


def test_not_hkid_shaped_text_is_never_rewritten():
    for text in [
        "tel 23456789 or 2345 6789, fax 98765432",  # phone numbers: no letter in the prefix
        "ref 12345678 and 0123456(7)",  # all digits
        "BOOKINGS, SOBIGOSS and OSBZIGO",  # letters only
        "HN12345678A HN1234567",  # hospital numbers (longer)
        "A12345(6) A1234567890",  # too short, too long
        "Room 5B, Ward 8S, bed 0O1",
    ]:
        assert correct_hkids(text) == (text, 0), text


def test_lower_case_l_prefix_read_as_l_unless_only_i_validates():
    # "l123456(7)" is an HKID with prefix L to the matcher; it becomes I only when the L
    # reading does not validate and the I one does
    rng = random.Random(4)
    for _ in range(100):
        digits = f"{rng.randrange(10**6):06d}"
        for check in "0123456789A":
            fixed, n = correct_hkids(f"l{digits}({check})")
            as_i = is_valid(f"I{digits}{check}") and not is_valid(f"L{digits}{check}")
            assert n == as_i
            assert (fixed == f"I{digits}({check})") == as_i


@st.composite
def near_hkids(draw) -> str:
    """A register-style HKID, written with brackets or not, with a few characters
    replaced by look-alikes or anything."""
    h = hkid(random.Random(draw(st.integers(0, 10**6))))
    text = list(draw(st.sampled_from([f"{h[:-1]}({h[-1]})", h, f"{h[:-1]} {h[-1]}"])))
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(text) - 1))
        text[i] = draw(st.sampled_from("OoQDIliZzSsGbTBgq0123456789£ "))
    return "".join(text)


_NOISE = st.text(alphabet="AaBOoIlSZG0123456789()[]{} £-/\n", max_size=20)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_NOISE, near_hkids()), max_size=6).map(" ".join))
def test_any_rewrite_is_a_valid_hkid_close_to_what_was_read(text):
    fixed, n = correct_hkids(text)
    if not n:
        assert fixed == text
        return
    # exactly n tokens were written, each a valid HKID in canonical bracketed form
    new = Counter(_TOKEN.findall(fixed)) - Counter(_TOKEN.findall(text))
    assert sum(new.values()) == n
    for token in new:
        assert is_valid(re.sub(r"[()]", "", token))
    # at most MAX_CHANGES characters per token differ (lengths differ by a dropped glyph)
    assert abs(len(fixed) - len(text)) <= n * (MAX_CHANGES + 3)
