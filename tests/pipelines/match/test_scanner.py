"""The scanner: exactly the planted records, record-level evidence, masked output,
identical results from both engines, batching, and use after fork."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leaksentry import synth
from leaksentry.config.matching import MatchingConfig, SeverityConfig
from leaksentry.errors import ConfigError
from leaksentry.identifiers.kinds import build_kinds
from pipelines.match import Matcher
from pipelines.match.finder import HAVE_HYPERSCAN, Finder
from pipelines.model import CELL_SEP, TextPart

PATIENTS = list(synth.patients(300, seed=7))  # the register in conftest.py
FILLER_EN = ("The patient was reviewed in clinic on 2024-03-05 and tel 9123 4567 was noted; "
             "ward 7B bed 12, follow up in 6 weeks. ")
FILLER_ZH = "病人於門診覆診，出院後需要跟進手術記錄及化驗結果。香港身份證號碼如下："


def forms(canonical: str) -> list[str]:
    body, check = canonical[:-1], canonical[-1]
    fw = "".join(chr(ord(c) + 0xFEE0) for c in f"{body}({check})")
    return [f"{body}({check})", canonical, f"{body} {check}", canonical.lower(), fw,
            f"{body}（{check}）", f"{body} ({check})"]


def plant(patients: list[synth.Patient], rng: random.Random) -> tuple[str, set[str], int]:
    """Text with some patients in varied forms plus decoys; (text, refs, valid decoys)."""
    chosen = rng.sample(patients, 12)
    chunks: list[str] = []
    for i, p in enumerate(chosen):
        chunks.append(FILLER_EN if i % 2 else FILLER_ZH)
        if i % 3 == 2:
            chunks.append(f" 住院號 {p.hn[:2]} {p.hn[2:-1]}({p.hn[-1]}) ")
        else:
            chunks.append(rng.choice(forms(p.hkid)) + rng.choice(["。", " ", "\n", "，"]))
    register = {p.hkid for p in patients}
    decoys = 0
    for _ in range(8):  # valid HKIDs that are not in the register
        h = synth.hkid(rng)
        if h not in register:
            decoys += 1
            chunks.append(f" {FILLER_EN} {rng.choice(forms(h))} ")
    for p in rng.sample(patients, 6):  # wrong check digit on a registered patient
        good = p.hkid[-1]
        bad = next(c for c in "0123456789A" if c != good)
        chunks.append(f" id {p.hkid[:-1]}({bad}) ")
    for p in rng.sample(patients, 6):  # look-alikes: inside longer alphanumeric runs
        chunks.append(f" X{p.hkid} {p.hkid}7 ref{p.hkid.lower()}z {p.hkid[1:]} ")
    return "".join(chunks), {p.ref for p in chosen}, decoys


def test_exactly_the_planted_records(matcher: Matcher, patients: list[synth.Patient]) -> None:
    for seed in range(5):
        text, refs, decoys = plant(patients, random.Random(seed))
        r = matcher.scan([TextPart(text, "paste.txt")])
        assert set(r.record_refs) == refs
        assert r.matched_records == len(refs)
        assert r.unmatched_valid["hkid"] == decoys
        assert all(m.record_ref in refs for m in r.matches)
        assert r.status == "ok" and r.parts == 1


def test_table_rows_are_record_level(matcher: Matcher, patients: list[synth.Patient]) -> None:
    parts = [TextPart(CELL_SEP.join(["name", "hkid", "hn"]), "Sheet1", row=1)]
    for i, p in enumerate(patients[:40], start=2):
        hn = p.hn if i % 2 else ""  # only even... odd rows carry both identifiers
        parts.append(TextPart(CELL_SEP.join([p.name, p.hkid, hn]), "Sheet1", row=i))
    r = matcher.scan(parts)
    assert r.matched_records == 40 and r.parts == 41
    assert r.record_refs == [str(i) for i in range(1, 41)]  # natural order
    assert set(r.record_level_refs) == {str(i - 1) for i in range(2, 42) if i % 2}
    by_ref = {(m.record_ref, m.kind): m for m in r.matches}
    assert by_ref[("1", "hkid")].where == "Sheet1!B2"
    assert by_ref[("2", "hn")].where == "Sheet1!C3"
    assert r.severity == "critical"  # 40 records >= high_records (10), raised by whole rows


def test_window_in_text(matcher: Matcher, patients: list[synth.Patient]) -> None:
    a, b = patients[0], patients[1]
    near = f"{a.hkid} {'x' * 50} {a.hn}"
    far = f"{b.hkid} {'說明' * 400} {b.hn}"
    r = matcher.scan([TextPart(near + "\n\n" + far, "doc.txt")])
    assert r.record_refs == ["1", "2"]
    assert r.record_level_refs == ["1"]


def test_where_lines(matcher: Matcher, patients: list[synth.Patient]) -> None:
    text = f"line one\nline two {patients[3].hkid}\n\nfour {patients[4].hn}\n"
    r = matcher.scan([TextPart(text, "a.txt"), TextPart(f"\n{patients[5].hkid}")])
    where = {m.record_ref: m.where for m in r.matches}
    assert where == {"4": "a.txt:line 2", "5": "a.txt:line 4", "6": "line 2"}


def test_counts_and_masks(matcher: Matcher, patients: list[synth.Patient]) -> None:
    p = patients[8]
    r = matcher.scan([TextPart(f"{p.hkid} and again {p.hkid.lower()} and {forms(p.hkid)[4]}")])
    assert len(r.matches) == 1
    m = r.matches[0]
    assert m.count == 3 and m.kind == "hkid" and m.record_ref == "9"
    assert m.masked.endswith(f"({p.hkid[-1]})") and p.hkid not in m.masked
    assert len(m.digest) == 16


def test_snippets_mask_every_identifier(matcher: Matcher, patients: list[synth.Patient]) -> None:
    rng = random.Random(11)
    text, _, _ = plant(patients, rng)
    r = matcher.scan([TextPart(text)])
    assert r.snippets
    blob = json.dumps([r.snippets, [m.to_json() for m in r.matches]], ensure_ascii=False)
    for p in patients:
        for form in [*forms(p.hkid), p.hn, p.hn.lower(), p.hkid[1:-1]]:
            assert form not in blob
    assert "****" in blob


def test_many_unregistered_hkids_raise_severity(matcher: Matcher) -> None:
    rng = random.Random(2)
    text = " ".join(synth.hkid(rng) for _ in range(30))
    r = matcher.scan([TextPart(text)])
    assert r.matched_records == 0 and r.unmatched_valid["hkid"] == 30
    assert r.severity == "medium" and r.hit and r.matches == []


def test_severity_thresholds(fp_dir: Path, patients: list[synth.Patient]) -> None:
    cfg = MatchingConfig(severity=SeverityConfig(low_records=1, medium_records=2,
                                                 high_records=3, critical_records=4,
                                                 record_level_boost=False))
    m = Matcher.load(fp_dir / "key", fp_dir / "fp", cfg)
    levels = []
    for n in range(0, 5):
        r = m.scan([TextPart(" ".join(p.hkid for p in patients[:n]))])
        levels.append((r.severity, r.risk_score > 0))
    assert levels == [("none", False), ("low", True), ("medium", True), ("high", True),
                      ("critical", True)]


def test_unmatched_severity_thresholds(fp_dir: Path) -> None:
    """Valid identifiers not in the register raise the severity at exactly each
    threshold (low, medium, high), and not one identifier earlier."""
    cfg = MatchingConfig(severity=SeverityConfig(unmatched_low=2, unmatched_medium=3,
                                                 unmatched_high=4))
    m = Matcher.load(fp_dir / "key", fp_dir / "fp", cfg)
    rng = random.Random(2)
    strangers = [synth.hkid(rng) for _ in range(5)]
    levels = []
    for n in range(0, 6):
        r = m.scan([TextPart(" ".join(strangers[:n]))])
        assert r.matched_records == 0 and r.unmatched_valid["hkid"] == n
        levels.append(r.severity)
    assert levels == ["none", "none", "low", "medium", "high", "high"]


def test_nothing_found(matcher: Matcher) -> None:
    r = matcher.scan([TextPart(FILLER_EN * 100), TextPart(""), TextPart("\x00\xff" * 10)])
    assert (r.severity, r.matched_records, r.matches, r.parts) == ("none", 0, [], 3)
    assert not r.hit and r.unmatched_valid == {"hkid": 0}
    assert matcher.scan([]).parts == 0


def test_small_batches_give_the_same_result(fp_dir: Path, patients: list[synth.Patient]) -> None:
    text, _, _ = plant(patients, random.Random(4))
    parts = [TextPart(line, "f.txt") for line in text.split("。")]
    big = Matcher.load(fp_dir / "key", fp_dir / "fp").scan(parts)
    small = Matcher.load(fp_dir / "key", fp_dir / "fp",
                         MatchingConfig(batch_bytes=1024)).scan(parts)
    assert big.record_refs == small.record_refs and big.matches == small.matches
    assert big.unmatched_valid == small.unmatched_valid


def test_works_after_fork(matcher: Matcher, patients: list[synth.Patient]) -> None:
    matcher.scan([TextPart("warm up")])  # scratch allocated in the parent first
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            res = matcher.scan([TextPart(f"x {patients[20].hkid} y")])
            os.write(w, json.dumps(res.record_refs).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    os.waitpid(pid, 0)
    assert json.loads(out) == ["21"]


def test_from_config(fp_dir: Path, patients: list[synth.Patient]) -> None:
    with pytest.raises(ConfigError, match=r"matching\.key"):
        Matcher.from_config(MatchingConfig(fingerprints=fp_dir / "fp"))
    with pytest.raises(ConfigError, match=r"matching\.fingerprints"):
        Matcher.from_config(MatchingConfig(key=fp_dir / "key"))
    m = Matcher.from_config(MatchingConfig(key=fp_dir / "key", fingerprints=fp_dir / "fp"))
    assert m.scan([TextPart(patients[0].hkid)]).record_refs == ["1"]


# --- both engines agree, and property tests --------------------------------------------------

_PIECES = st.sampled_from([" ", "\n", "(", ")", "（", "）", "　", "A", "Z", "a", "HN", "hn",
                           "Ａ", "ｚ", "１", "3", "12", "123456", "１２３４５６", "7", "X",
                           "香港", "身份證", CELL_SEP, "A123456(3)", "AB987654 3",
                           "HN12345678(A)", "Ｇ１２３４５６Ａ", "A123456", "-", "ref",
                           "/", "[", "]", "［", "］", "－", "／", "A123456-3", "A123456[3]",
                           "G123456 / A", "Ｇ１２３４５６［Ａ］"])


@pytest.mark.skipif(not HAVE_HYPERSCAN, reason="hyperscan not installed")
@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=40))
def test_engines_find_the_same_candidates(pieces: list[str]) -> None:
    kinds = build_kinds()
    buf = b"\n" + "".join(pieces).encode() + b"\n"
    assert Finder(kinds, "hyperscan").find(buf) == Finder(kinds, "re").find(buf)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 299), st.integers(0, 6), st.sampled_from([FILLER_EN, FILLER_ZH, ""]),
       st.sampled_from(["", " ", "：", "\n", CELL_SEP]))
def test_every_written_form_is_found(matcher: Matcher, i: int, form: int, filler: str,
                                     edge: str) -> None:
    p = PATIENTS[i]
    written = forms(p.hkid)[form]
    r = matcher.scan([TextPart(f"{filler}{edge}{written}{edge or ' '}{filler}")])
    assert r.record_refs == [p.ref]
    assert r.matches[0].kind == "hkid"


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 299), st.integers(0, 6), st.integers(0, 9))
def test_no_wrong_check_digit_is_a_match(matcher: Matcher, i: int, form: int, k: int) -> None:
    p = PATIENTS[i]
    wrong = [c for c in "0123456789A" if c != p.hkid[-1]][k]
    written = forms(p.hkid[:-1] + wrong)[form]
    r = matcher.scan([TextPart(f"{FILLER_ZH}{written} {FILLER_EN}")])
    assert r.matched_records == 0 and r.matches == []


def test_snippet_edges_never_cut_an_identifier_open(matcher: Matcher) -> None:
    p = PATIENTS[30]
    decoy = "Z437626A"  # valid, not in the register
    for gap in range(0, 200, 3):
        text = f"{decoy[:-1]}({decoy[-1]}){'x ' * gap}{p.hkid} {'y ' * gap}{decoy}"
        r = matcher.scan([TextPart(text)])
        assert r.record_refs == [p.ref]
        blob = " ".join(r.snippets)
        assert "437626" not in blob and "4376" not in blob and p.hkid[1:7] not in blob


def test_part_capped_batches_give_the_same_result(fp_dir: Path, patients: list[synth.Patient],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch also ends after a fixed number of parts (it bounds a CSV's per-row state):
    rows split over many batches give the same matches, places and record-level refs,
    and the cyclic collector is left as it was found."""
    import gc

    from pipelines.match import scanner

    parts = [TextPart(CELL_SEP.join(["name", "hkid", "hn"]), "Sheet1", row=1)]
    for i, p in enumerate(patients[:60], start=2):
        parts.append(TextPart(CELL_SEP.join([p.name, p.hkid.lower(), p.hn]), "Sheet1", row=i))
    parts.append(TextPart(f"{patients[3].hkid} again", "notes.txt"))
    one = Matcher.load(fp_dir / "key", fp_dir / "fp").scan(parts)
    monkeypatch.setattr(scanner, "_BATCH_PARTS", 7)
    assert gc.isenabled()
    many = Matcher.load(fp_dir / "key", fp_dir / "fp").scan(parts)
    assert gc.isenabled()
    assert one.matches == many.matches and len(one.matches) == 120
    assert one.record_level_refs == many.record_level_refs and len(many.record_level_refs) == 60
    assert [m.count for m in many.matches if m.record_ref == "4" and m.kind == "hkid"] == [2]
    gc.disable()
    try:
        Matcher.load(fp_dir / "key", fp_dir / "fp").scan(parts[:5])
        assert not gc.isenabled()  # a scan does not turn on a collector its caller paused
    finally:
        gc.enable()


@pytest.mark.parametrize("location", ["doc.txt", None])
def test_line_numbers_with_many_identifiers(matcher: Matcher, patients: list[synth.Patient],
                                            location: str | None) -> None:
    """Past 32 first occurrences in a batch, line numbers come from one pass over the
    newlines: the same numbers as counting, in every part of the batch."""
    lines = [FILLER_EN] * 3
    for i, p in enumerate(patients[:50]):
        lines.append(f"{FILLER_ZH} {p.hkid if i % 2 else forms(p.hkid)[3]}")
        lines.append(FILLER_EN * (i % 3))
    text = "\n".join(lines)
    r = matcher.scan([TextPart("preamble\nno ids here", location), TextPart(text, location)])
    got = {m.record_ref: m.where for m in r.matches}
    prefix = f"{location}:" if location else ""
    assert len(got) == 50
    assert got == {str(i + 1): f"{prefix}line {4 + 2 * i}" for i in range(50)}
