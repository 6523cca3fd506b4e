"""Written forms of an HKID (issue 13 item 7): the check character after ``-`` or ``/``,
inside ``[]``, full-width variants, spaces around them; canonical form unchanged.
Property tests on every engine and path (the ``matcher`` fixture): every written form of
a register HKID is found; none of these separators makes a non-HKID match."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leaksentry import synth
from leaksentry.identifiers.kinds import build_kinds
from leaksentry.redaction import mask
from pipelines.match import Matcher
from pipelines.model import CELL_SEP, TextPart

PATIENTS = list(synth.patients(300, seed=7))  # the register in conftest.py
FORMS = len(synth.hkid_written_forms("A1234563"))
FILLERS = ["", "The patient was reviewed; tel 9123 4567. ", "病人於門診覆診，香港身份證號碼如下："]
_FIXTURE = [HealthCheck.function_scoped_fixture]


@pytest.mark.parametrize("written", synth.hkid_written_forms("A1234563")
                         + synth.hkid_written_forms("AB9876543"))
def test_canonical_form_is_unchanged(written: str) -> None:
    hkid = build_kinds()[0]
    assert hkid.canonical(written.encode()) in ("A1234563", "AB9876543")
    assert hkid.full.fullmatch(written.encode())


@settings(max_examples=200, deadline=None, suppress_health_check=_FIXTURE)
@given(st.integers(0, 299), st.integers(0, FORMS - 1), st.sampled_from(FILLERS),
       st.sampled_from(["", " ", "：", "\n", CELL_SEP, "，"]))
def test_every_written_form_of_a_register_hkid_is_found(matcher: Matcher, i: int, form: int,
                                                       filler: str, edge: str) -> None:
    p = PATIENTS[i]
    forms = synth.hkid_written_forms(p.hkid)
    written = forms[form % len(forms)]
    r = matcher.scan([TextPart(f"{filler}{edge}{written}{edge or ' '}{filler}")])
    assert r.record_refs == [p.ref], written
    assert [(m.kind, m.masked) for m in r.matches] == [("hkid", mask("hkid", p.hkid))]


@settings(max_examples=200, deadline=None, suppress_health_check=_FIXTURE)
@given(st.integers(0, 299), st.integers(0, FORMS - 1), st.integers(0, 9))
def test_a_wrong_check_character_is_never_a_match(matcher: Matcher, i: int, form: int,
                                                  k: int) -> None:
    p = PATIENTS[i]
    wrong = [c for c in "0123456789A" if c != p.hkid[-1]][k]
    forms = synth.hkid_written_forms(p.hkid[:-1] + wrong)
    r = matcher.scan([TextPart(f"{FILLERS[2]}{forms[form % len(forms)]} {FILLERS[1]}")])
    assert r.matched_records == 0 and r.matches == []
    assert r.unmatched_valid.get("hkid", 0) == 0


@settings(max_examples=200, deadline=None, suppress_health_check=_FIXTURE)
@given(st.integers(0, 299), st.sampled_from(["-", "/", "－", "／", " - ", " / "]),
       st.sampled_from(["0", "12", "X", "Ａ", "１", "2020", "a"]))
def test_a_separator_never_makes_a_longer_token_a_match(matcher: Matcher, i: int, sep: str,
                                                        tail: str) -> None:
    """``A123456-3X``, ``A123456/2020``: the separated check character must end the token
    (a date, a range, a version is not an HKID)."""
    p = PATIENTS[i]
    body, check = p.hkid[:-1], p.hkid[-1]
    r = matcher.scan([TextPart(f"{FILLERS[1]}{body}{sep}{check}{tail} {FILLERS[1]}")])
    assert r.matches == [] and r.unmatched_valid.get("hkid", 0) == 0


@pytest.mark.parametrize("text", ["A123456-", "A123456/ ", "A123456[]", "A123456[3",
                                  "A123456-(3)", "A123456--3", "A123456//3", "A123456[3)"])
def test_malformed_separators_are_not_hkids(matcher: Matcher, text: str) -> None:
    r = matcher.scan([TextPart(f"x {text} y")])
    assert r.matches == [] and r.unmatched_valid.get("hkid", 0) == 0
