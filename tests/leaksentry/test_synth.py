"""The fictional register generator: repeatable, distinct, valid, and every written form
canonicalises back to the register value."""

from __future__ import annotations

import random

from leaksentry import synth
from leaksentry.identifiers.hkid import is_valid
from leaksentry.identifiers.kinds import build_kinds

HKID, HN = build_kinds()[:2]


def test_repeatable_and_distinct() -> None:
    a = list(synth.patients(500, seed=3))
    assert a == list(synth.patients(500, seed=3))
    assert a != list(synth.patients(500, seed=4))
    assert len({p.hkid for p in a}) == 500 and len({p.hn for p in a}) == 500
    assert [p.ref for p in a] == [str(i) for i in range(1, 501)]


def test_identifiers_are_valid_canonical_forms() -> None:
    for p in synth.patients(300):
        assert is_valid(p.hkid)
        assert HKID.canonical_cell(p.hkid) == p.hkid
        assert HN.canonical_cell(p.hn) == p.hn


def test_written_forms_canonicalise() -> None:
    rng = random.Random(9)
    for p in synth.patients(200):
        assert HKID.canonical(synth.written_hkid(p.hkid, rng).encode()) == p.hkid
        assert HN.canonical(synth.written_hn(p.hn, rng).encode()) == p.hn


def test_invalid_hkid_fails_the_check() -> None:
    rng = random.Random(1)
    assert not any(is_valid(synth.invalid_hkid(rng)) for _ in range(300))


def test_register_rows() -> None:
    rows = list(synth.register_rows(5))
    assert rows[0] == synth.REGISTER_COLUMNS and len(rows) == 6
    assert all(len(r) == len(synth.REGISTER_COLUMNS) for r in rows)
