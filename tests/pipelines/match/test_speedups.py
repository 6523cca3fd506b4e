"""The C speedups (pipelines/match/_speedups.c) against their pure-Python twins.

Every function of the extension has a Python twin that the scanner uses when the
extension is not built; here both run on the same inputs, including hostile ones
(truncated and invalid UTF-8, full-width text dense enough to change strategy,
skewed fingerprint tables), and must agree exactly.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leaksentry import synth
from leaksentry.config.matching import KindConfig, MatchingConfig
from leaksentry.identifiers.kinds import build_kinds
from pipelines.match import Matcher
from pipelines.match.finder import (
    HAVE_HYPERSCAN,
    Finder,
    fullwidth_alnum,
    fullwidth_windows,
    max_width,
)
from pipelines.match.fpfile import FingerprintSet, write_fingerprints
from pipelines.match.speedups import speedups
from pipelines.model import CELL_SEP, TextPart

fast = speedups()
PATIENTS = list(synth.patients(300, seed=7))  # the register in conftest.py
needs_c = pytest.mark.skipif(fast is None, reason="the C speedups are not built")
needs_hs = pytest.mark.skipif(not HAVE_HYPERSCAN, reason="hyperscan not installed")


def test_built_where_required() -> None:
    """`make test` sets LEAKSENTRY_REQUIRE_SPEEDUPS=1: CI must not quietly test only the
    Python path because the extension failed to compile."""
    if os.environ.get("LEAKSENTRY_REQUIRE_SPEEDUPS") != "1":
        pytest.skip("LEAKSENTRY_REQUIRE_SPEEDUPS is not set")
    assert fast is not None


def test_switched_off_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEAKSENTRY_SPEEDUPS", "0")
    assert speedups() is None
    assert not Finder(build_kinds()).accelerated
    with pytest.raises(RuntimeError, match="not built"):
        Finder(build_kinds(), speedups=True)


# --- the pieces ------------------------------------------------------------------------------

_TEXT = st.lists(st.sampled_from([
    " ", "\n", "(", ")", "（", "）", "　", "\u00a0", "A", "Z", "a", "HN", "hn", "Ｈ", "Ｎ", "ｈｎ",
    "Ａ", "ｚ", "１", "3", "12", "123456", "１２３４５６", "7", "X", "，", "。", "香港", "身份證",
    CELL_SEP, "A123456(3)", "AB987654 3", "HN12345678(A)", "Ｇ１２３４５６Ａ", "A123456",
    "-", "ref", "Ｘ１２３４５６（７）", "ＨＮ１２３４５６７８", "G123456（A）",
    # the check character after - / and in [] (issue 13), ASCII and full-width
    "/", "[", "]", "［", "］", "－", "／", "A123456-3", "A123456 / 3", "A123456[3]",
    "Ｇ１２３４５６［Ａ］", "G123456－A", "AB987654／3",
]), max_size=60).map("".join)


@needs_c
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | _TEXT.map(str.encode), st.integers(0, 70),
       st.integers(0, 40), st.integers(0, 400))
def test_fullwidth_windows_twins(buf: bytes, width: int, limit: int, coverage: int) -> None:
    got = fast.fullwidth_windows(buf, width, limit, coverage)
    want = fullwidth_windows(buf, width, limit, coverage)
    if want is None:
        assert got is None
    else:
        assert got is not None
        assert (np.frombuffer(got[0], dtype=np.int64).tolist(), got[1]) == want
        for p in want[0]:  # every character with `width` bytes either side is inside one
            assert any(a <= max(0, p - width) and min(len(buf), p + 3 + width) <= b
                       for a, b in want[1])
    starts = fullwidth_alnum(buf)
    if len(starts):  # the limit is on the number of characters, exactly
        assert fast.fullwidth_windows(buf, width, len(starts) - 1, len(buf)) is None
        got = fast.fullwidth_windows(buf, width, len(starts), len(buf))
        assert np.frombuffer(got[0], dtype=np.int64).tolist() == starts.tolist()


@needs_c
@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(0, 450), max_size=20))
def test_newlines_before_twins(buf: bytes, positions: list[int]) -> None:
    pos = np.array(sorted(positions), dtype=np.int64)
    got = np.frombuffer(fast.newlines_before(buf, pos), dtype=np.int64).tolist()
    assert got == [buf[:p].count(b"\n") for p in pos.tolist()]
    # out of order: still right (it restarts the count)
    rev = pos[::-1].copy()
    got = np.frombuffer(fast.newlines_before(buf, rev), dtype=np.int64).tolist()
    assert got == [buf[:p].count(b"\n") for p in rev.tolist()]


@needs_hs
@settings(max_examples=400, deadline=None)
@given(_TEXT)
def test_finders_agree(text: str) -> None:
    """hyperscan with C, hyperscan in Python, and `re` find the same candidates."""
    kinds = build_kinds()
    buf = b"\n" + text.encode() + b"\n"
    want = Finder(kinds, "re").find(buf)
    assert Finder(kinds, "hyperscan", speedups=False).find(buf) == want
    if fast is not None:
        assert Finder(kinds, "hyperscan", speedups=True).find(buf) == want


@needs_hs
@pytest.mark.parametrize("accelerated", [True, False])
def test_windows_and_dense_fullwidth(accelerated: bool) -> None:
    """Sparse full-width letters/digits are scanned in windows, dense ones by one full
    pass; both give the `re` engine's candidates, in a buffer big enough for both."""
    if accelerated and fast is None:
        pytest.skip("the C speedups are not built")
    kinds = build_kinds()
    rng = random.Random(3)
    people = list(synth.patients(400, seed=11))
    for dense in (False, True):
        chunks = []
        for p in people:
            chunks.append("病人於門診覆診，" * rng.randrange(1, 40))
            chunks.append(synth.written_hkid(p.hkid, rng) + rng.choice([" ", "，", "\n", "x"]))
            if dense:
                chunks.append("ＡＢＣ１２３" * 20)
        buf = b"\n" + "".join(chunks).encode() + b"\n"
        f = Finder(kinds, "hyperscan", speedups=accelerated)
        assert f._width == max(max_width(e) for k in kinds for e, _ in k.hs_expressions)
        found = fullwidth_windows(buf, f._width, f._fw_limit(len(buf)), len(buf) // 4)
        assert (found is None) == dense and len(fullwidth_alnum(buf)) > 0
        assert f.find(buf) == Finder(kinds, "re").find(buf)


def test_custom_kinds_have_no_narrow_pass() -> None:
    cfg = MatchingConfig(kinds=[KindConfig(name="mrn", pattern=r"MRN[0-9]+")])
    kinds = build_kinds(cfg)
    assert kinds[-1].hs_narrow_expressions is None
    if HAVE_HYPERSCAN:
        f = Finder(kinds, "hyperscan")
        assert f._narrow_db is None  # one full pass, as before
        buf = b"\nMRN12345 A123456(3) \xef\xbc\xa1\n"
        assert f.find(buf) == Finder(kinds, "re").find(buf)


# --- the whole matcher, C and Python ---------------------------------------------------------

@pytest.fixture(scope="module")
def custom(tmp_path_factory: pytest.TempPathFactory, key: bytes) -> tuple[MatchingConfig, Path]:
    """Kinds that exercise every checksum, case folding off, removals, and a pattern with
    Chinese characters in it (which the C path hands back to Python)."""
    cfg = MatchingConfig(kinds=[
        KindConfig(name="card", pattern=r"[0-9]{4}-[0-9]{4}-[0-9]{4}-[0-9]{4}",
                   checksum="luhn", remove="-"),
        KindConfig(name="nhs", pattern=r"NHS ?[0-9]{9}[0-9X]", checksum="mod11", remove=" "),
        KindConfig(name="ward", pattern=r"ward[a-z]{2}[0-9]{3}", upper=False),
        KindConfig(name="bed", pattern=r"床位[0-9]{4}", checksum="none"),
    ])
    return cfg, tmp_path_factory.mktemp("custom")


def _luhn(body: str) -> str:
    total = 0
    for i, c in enumerate(reversed(body)):
        d = int(c) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def _mod11(body: str) -> str:
    total = sum(w * int(d) for w, d in zip(range(2, len(body) + 2), reversed(body),
                                           strict=True))
    want = (11 - total % 11) % 11
    return body + ("X" if want == 10 else str(want))


@needs_c
def test_matchers_agree_on_every_kind(custom: tuple[MatchingConfig, Path], key: bytes,
                                      patients: list[synth.Patient]) -> None:
    """Register digests for some identifiers of every kind (HMACs made by the Python
    digester), then scan text holding them, decoys and invalid ones with both paths:
    identical results, and every registered identifier found."""
    from pipelines.match.digest import Digester

    cfg, d = custom
    rng = random.Random(5)
    dg = Digester(key)
    idents = {
        "hkid": [p.hkid for p in patients[:20]],
        "hn": [p.hn for p in patients[:20]],
        "card": [_luhn("".join(rng.choice("0123456789") for _ in range(15)))
                 for _ in range(10)],
        "nhs": [_mod11("".join(rng.choice("0123456789") for _ in range(9))) for _ in range(10)],
        "ward": [f"ward{rng.choice('abc')}{rng.choice('xyz')}{rng.randrange(100, 999)}"
                 for _ in range(10)],
        "bed": [f"床位{rng.randrange(1000, 9999)}" for _ in range(10)],
    }
    canon = {"hkid": lambda s: s, "hn": lambda s: s, "card": lambda s: s,
             "nhs": lambda s: "NHS" + s, "ward": lambda s: s, "bed": lambda s: s}
    registered = [(k, canon[k](v)) for k, vs in idents.items() for v in vs[::2]]
    digests = [dg.digest64(f"{k}:{c}".encode()) for k, c in registered]
    write_fingerprints(d / "fp", key, np.array(digests, dtype=np.uint64),
                       np.arange(1, len(digests) + 1, dtype=np.uint32),
                       ["hkid", "hn"], [len(digests), 0], n_records=len(digests))
    written = {
        "hkid": lambda s: rng.choice([s, s.lower(), f"{s[:-1]}({s[-1]})",
                                      "".join(chr(ord(c) + 0xFEE0) for c in s)]),
        "hn": lambda s: rng.choice([s, f"{s[:2]} {s[2:]}"]),
        "card": lambda s: "-".join(s[i:i + 4] for i in range(0, 16, 4)),
        "nhs": lambda s: rng.choice([f"NHS {s}", f"NHS{s}"]),
        "ward": lambda s: s, "bed": lambda s: s,
    }
    chunks = []
    for k, vs in idents.items():
        for v in vs:
            chunks.append(f"病人資料 {written[k](v)}，follow up\n")
            chunks.append(f" bad {v[:-1]}{'1' if v[-1] != '1' else '2'} ")
    rng.shuffle(chunks)
    text = "".join(chunks)
    fp = FingerprintSet(d / "fp", key)
    c = Matcher(key, fp, cfg, speedups=True)
    py = Matcher(key, fp, cfg, speedups=False)
    assert c.accelerated and not py.accelerated
    for parts in ([TextPart(text, "a.txt")], [TextPart(text.encode(), "a.txt")],
                  [TextPart(line, "s", row=i) for i, line in enumerate(text.splitlines())]):
        rc, rp = c.scan(parts), py.scan(parts)
        assert rc == rp
        assert rc.matched_records == len(registered)


def _skewed(key: bytes, d: Path, query: list[int], extra: np.ndarray) -> FingerprintSet:
    digests = np.concatenate([np.array(query, dtype=np.uint64), extra]).astype(np.uint64)
    write_fingerprints(d / "fp", key, digests, np.arange(1, len(digests) + 1, dtype=np.uint32),
                       ["hkid", "hn"], [len(digests), 0], n_records=len(digests))
    return FingerprintSet(d / "fp", key)


@needs_c
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["uniform", "clustered", "low", "high", "dupes", "empty"]),
       st.integers(0, 2**32))
def test_lookup_twins_on_skewed_tables(tmp_path: Path, key: bytes, shape: str,
                                       seed: int) -> None:
    """The C lookup interpolates (digests are uniform) but must stay exact on any table:
    clustered values, values packed at either end, duplicates, none at all."""
    from pipelines.match.digest import Digester

    patients = PATIENTS
    rng = np.random.default_rng(seed)
    dg = Digester(key)
    qs = [dg.digest64(b"hkid:" + p.hkid.encode()) for p in patients[:30]]
    n = 5000
    extra = {
        "uniform": rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True),
        "clustered": np.uint64(qs[0]) + rng.integers(0, 1000, n).astype(np.uint64),
        "low": rng.integers(0, 1000, n).astype(np.uint64),
        "high": np.uint64(2**64 - 1) - rng.integers(0, 1000, n).astype(np.uint64),
        "dupes": np.repeat(np.array(qs[:5], dtype=np.uint64), 50),
        "empty": np.zeros(0, dtype=np.uint64),
    }[shape]
    present = qs[::3] if shape != "empty" else []
    fp = _skewed(key, tmp_path, present, extra)
    text = " ".join(p.hkid for p in patients[:30])
    for b in (True, False):
        assert Matcher(key, fp, speedups=b).scan([TextPart(text)]).record_refs == \
            Matcher(key, fp, speedups=False).scan([TextPart(text)]).record_refs
    c = Matcher(key, fp, speedups=True)
    k, s, e = c.finder.find_arrays(b"\n" + text.encode() + b"\n")
    got = c._evaluate(b"\n" + text.encode() + b"\n", k, s, e)
    want = c._evaluate_py(b"\n" + text.encode() + b"\n", k, s, e)
    for g, w in zip(got[:4], want[:4], strict=True):
        assert g.tolist() == w.tolist()
    assert got[4] == want[4]
    table = set(fp.digests.tolist())
    assert int(got[2].sum()) == sum(q in table for q in qs) >= len(present)


@needs_c
def test_tokens_reject_bad_offsets() -> None:
    col = fast.Collector()
    col(0, 5, 2, 0, None)  # ends before it starts
    with pytest.raises(ValueError, match="outside"):
        col.tokens(b"\nabcdef\n", b"\x00", b"\x01")
    col.clear()
    col(7, 0, 3, 0, None)  # an expression id the tables do not know
    with pytest.raises(ValueError, match="out of range"):
        col.tokens(b"\nabcdef\n", b"\x00", b"\x01")
    ev = fast.Evaluator(b"k" * 32, [(b"hkid:", True, b" ", "hkid")])
    with pytest.raises(ValueError):
        ev.evaluate(b"abc", np.array([0], dtype=np.int64), np.array([0], dtype=np.int64),
                    np.array([99], dtype=np.int64), np.zeros(0, dtype=np.uint64))
    with pytest.raises(ValueError, match="checksum"):
        fast.Evaluator(b"k", [(b"x:", True, b"", "crc")])


@needs_c
def test_long_keys_and_tokens_match_python(tmp_path: Path) -> None:
    """A key longer than SHA-256's block is hashed first (RFC 2104), and a token longer
    than the C buffer goes the Python way; both as Python computes them."""
    from pipelines.match.digest import Digester

    key = bytes(range(100))
    dg = Digester(key)
    cfg = MatchingConfig(kinds=[KindConfig(name="long", pattern=r"L[0-9]{300}")])
    long_id = "L" + "7" * 300
    digests = np.array([dg.digest64(b"hkid:A1234563"), dg.digest64(f"long:{long_id}".encode())],
                       dtype=np.uint64)
    write_fingerprints(tmp_path / "fp", key, digests, np.array([1, 2], dtype=np.uint32),
                       ["hkid", "hn"], [2, 0], n_records=2)
    fp = FingerprintSet(tmp_path / "fp", key)
    text = f"x A123456(3) y {long_id} z"
    rc = Matcher(key, fp, cfg, speedups=True).scan([TextPart(text)])
    assert rc == Matcher(key, fp, cfg, speedups=False).scan([TextPart(text)])
    assert rc.record_refs == ["1", "2"]
