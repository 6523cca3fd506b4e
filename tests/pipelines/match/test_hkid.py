"""The HKID check character: every REFERENCE.md vector, in every written form."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leaksentry import synth
from leaksentry.identifiers.hkid import check_char, is_valid, is_valid_canonical
from leaksentry.identifiers.kinds import build_kinds

VALID = ["A123456(3)", "A1234563", "a1234563", "A123458(A)", "A123466(0)", "UH456123(7)",
         "E364912(5)", "AB987654(3)", "G123456A", "A5555550", "C5678909", "WX1234569",
         "AB9876543", "CA182361(1)", "Z437626A"]
INVALID = ["A123456(9)", "E364912(6)", "E364912{5}", "AAB987654(3)", "C5678908", "1234567",
           "123456(3)"]
HKID = build_kinds()[0]


def canon(text: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", text.upper())


@pytest.mark.parametrize("value", VALID)
def test_valid_vectors(value: str) -> None:
    c = canon(value)
    assert is_valid_canonical(c)
    assert is_valid(c)
    assert HKID.canonical_cell(value) == c


@pytest.mark.parametrize("value", INVALID)
def test_invalid_vectors(value: str) -> None:
    assert HKID.canonical_cell(value) is None
    # also not found as a valid identifier when written in text
    buf = f"\n id {value} end\n".encode()
    found = [HKID.canonical(buf[m.start():m.end()]) for m in HKID.rx.finditer(buf)]
    assert not any(is_valid(c) for c in found)


def test_one_letter_pad_is_36_not_zero() -> None:
    # treating the pad as 0 gives a different check for A123456
    assert check_char("A123456") == "3"
    assert check_char("AB987654") == "3"


@pytest.mark.parametrize("written", ["A123456(3)", "A1234563", "A123456 3", "a1234563",
                                     "Ａ１２３４５６（３）", "a 123456 (3)", "A123456（3）"])
def test_written_forms_canonicalise(written: str) -> None:
    assert HKID.canonical(written.encode()) == "A1234563"
    buf = f"\n香港身份證{written}。\n".encode()
    ms = list(HKID.rx.finditer(buf))
    assert [HKID.canonical(buf[m.start():m.end()]) for m in ms] == ["A1234563"]


@given(st.integers(0, 10**6 - 1), st.sampled_from(["A", "Z", "WX", "XA", "C"]))
def test_fast_and_reference_validators_agree(digits: int, prefix: str) -> None:
    body = f"{prefix}{digits:06d}"
    for check in "0123456789A":
        assert is_valid(body + check) == is_valid_canonical(body + check)
    assert is_valid(body + check_char(body))


def test_synth_hkids_are_valid() -> None:
    rng = random.Random(5)
    for _ in range(200):
        assert is_valid(synth.hkid(rng))
        assert not is_valid(synth.invalid_hkid(rng))


@settings(deadline=None)
@given(st.integers(0, 10**6 - 1), st.sampled_from(["A", "Z", "WX", "XA", "C", "a", "1"]),
       st.sampled_from(list("0123456789AB")))
def test_bytes_validator_agrees(digits: int, prefix: str, check: str) -> None:
    from leaksentry.identifiers.hkid import is_valid_bytes

    c = f"{prefix}{digits:06d}{check}"
    assert is_valid_bytes(c.encode()) == is_valid_canonical(c)


@settings(deadline=None)
@given(st.lists(st.one_of(
    st.builds(lambda p, d, c: f"{p}{d:06d}{c}".encode(),
              st.sampled_from(["A", "Z", "WX", "XA", "C", "a", "1", " ", "AAA", ""]),
              st.integers(0, 10**6 - 1), st.sampled_from(list("0123456789ABa"))),
    st.binary(max_size=12),
    st.text(max_size=10).map(lambda s: s.encode()),
), max_size=40))
def test_vectorised_validator_agrees(canonicals: list[bytes]) -> None:
    """The scanner validates a whole batch with numpy: same answer as one by one."""
    from leaksentry.identifiers.hkid import is_valid_bytes, valid_many_bytes

    assert valid_many_bytes(canonicals).tolist() == [is_valid_bytes(c) for c in canonicals]


def test_vectorised_validator_on_generated() -> None:
    from leaksentry.identifiers.hkid import valid_many_bytes

    rng = random.Random(11)
    good = [synth.hkid(rng).encode() for _ in range(300)]
    bad = [synth.invalid_hkid(rng).encode() for _ in range(300)]
    assert valid_many_bytes(good).all()
    assert not valid_many_bytes(bad).any()
