"""A large plain text scanned in two halves at once (pipelines.process, `leaksentry scan`)
gives the result of one scan: the same matches, counts, first places, record-level refs,
distinct unmatched identifiers, snippets and exposed labels. When a half is not plain
text throughout (an embedded payload, NULs) or its labels must be looked at in order, the
first half's process goes on with the rest itself, with the same result. Small chunks
(the config's minimum) and a small threshold make a few kB of text many chunks."""

from __future__ import annotations

import base64
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures_register import fingerprint_register

from leaksentry import synth
from leaksentry.config.extract import ExtractConfig
from leaksentry.config.matching import MatchingConfig
from pipelines import process
from pipelines.match import Matcher
from pipelines.model import ScanResult

CONFIG = ExtractConfig(text_chunk_chars=1024)
REGISTER = list(synth.patients(41, seed=5))
PEOPLE = REGISTER[:40]  # in the texts below; the last one only where a test puts it
WORDS = ["the", "quarterly", "report", "lists", "ward", "rounds", "and", "已", "出院", "病人",
         "with", "notes"]


@pytest.fixture(scope="module")
def matcher(tmp_path_factory: pytest.TempPathFactory) -> Matcher:
    rows = [["ref", "hkid", "hn"], *([p.ref, p.hkid, p.hn] for p in REGISTER)]
    key, fp = fingerprint_register(tmp_path_factory.mktemp("register"), rows,
                                   hkid_column="hkid", hn_column="hn", ref_column="ref")
    # snippets on (the [privacy] opt-in): the halves' snippets are merged too
    return Matcher.load(key, fp, MatchingConfig(snippets=5))


@pytest.fixture(autouse=True)
def small_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "SPLIT_MIN_BYTES", 0)
    monkeypatch.setattr(process, "_spare_cpu", lambda: True)


@pytest.fixture
def merges(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """What each Matcher.merge call (in this process) answered."""
    seen: list[bool] = []
    real = Matcher.merge

    def spy(self: Matcher, *args: Any) -> bool:
        seen.append(real(self, *args))
        return seen[-1]

    monkeypatch.setattr(Matcher, "merge", spy)
    return seen


def prose(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def dense_text(lines: int = 600) -> bytes:
    """Identifiers on every line: registered HKIDs and hospital numbers (some written
    full-width, some a record's two on one line), valid ones not in the register, the same
    ones again and again across the text; a label before the first ones."""
    rng = random.Random(11)
    outsiders = [synth.hkid(random.Random(1000 + i)) for i in range(6)]
    out = ["Patient list", "HKID: " + PEOPLE[0].hkid + " name: " + PEOPLE[0].name]
    for i in range(lines):
        p = PEOPLE[i % len(PEOPLE)]
        ident = p.hkid if i % 3 else p.hn
        if i % 7 == 0:
            ident = synth.written_hkid(p.hkid, rng)
        if i % 11 == 0:
            ident = f"{p.hkid} {prose(rng, 2)} {p.hn}"  # a record's two identifiers
        if i % 5 == 0:
            ident += " " + outsiders[i % len(outsiders)]
        out.append(f"{prose(rng, 6)} {ident} {prose(rng, 4)}")
    return ("\n".join(out) + "\n").encode()


def scan(matcher: Matcher, data: bytes, split: bool) -> ScanResult:
    result = process.scan_inline(data, "notes.txt", matcher, CONFIG, split=split)
    result.details.pop("seconds")
    return result


def test_two_halves_give_the_one_scan_result(matcher: Matcher, merges: list[bool]) -> None:
    data = dense_text()
    cut = process._split_point(data, "notes.txt", CONFIG)
    assert cut is not None and 0 < cut < len(data) and data[cut - 1:cut] == b"\n"
    single = scan(matcher, data, split=False)
    halves = scan(matcher, data, split=True)
    assert merges == [True]  # the child's half was merged, not scanned here again
    assert halves == single
    assert single.status == "ok" and single.matched_records == len(PEOPLE)
    assert single.record_level_refs and single.unmatched_valid["hkid"] == 6
    assert single.snippets and single.exposed_categories


def test_identifiers_either_side_of_the_cut(matcher: Matcher, merges: list[bool]) -> None:
    """The lines just before and after the cut (rewritten in place, so the chunks stay
    where they were) hold a record's identifiers seen nowhere else: the one after is
    located from the line the second half starts on."""
    data = dense_text()
    cut = process._split_point(data, "notes.txt", CONFIG)
    assert cut is not None
    extra = REGISTER[-1]
    before = data.rfind(b"\n", 0, cut - 1) + 1
    after = data.index(b"\n", cut)
    data = (data[:before] + f"last before {extra.hkid}".encode().ljust(cut - 1 - before)
            + b"\n" + f"first after {extra.hn}".encode().ljust(after - cut) + data[after:])
    assert process._split_point(data, "notes.txt", CONFIG) == cut
    single, halves = scan(matcher, data, False), scan(matcher, data, True)
    assert merges == [True]
    assert halves == single
    places = {m.kind: m.where for m in single.matches if m.record_ref == extra.ref}
    line = data.count(b"\n", 0, cut) + 1
    assert places["hn"] == f"from line {line}:line 1"
    # two parts (chunks) in a single scan too: not a record-level pair there either
    assert extra.ref not in single.record_level_refs


@pytest.mark.parametrize("spoil", ["embedded", "nul"])
def test_a_half_that_is_not_plain_text_is_scanned_in_order(
        matcher: Matcher, merges: list[bool], spoil: str) -> None:
    data = dense_text()
    cut = process._split_point(data, "notes.txt", CONFIG)
    assert cut is not None
    if spoil == "embedded":  # a base64 payload in the second half, holding an identifier
        blob = base64.b64encode(f"record {PEOPLE[3].hkid} {prose(random.Random(2), 40)}"
                                .encode()).decode()
        data = data[:cut] + b"attachment:\n" + blob.encode() + b"\n" + data[cut:]
    else:  # NUL padding in the first half (replaced by a space: the chunks shrink)
        data = data[:100] + b"\x00" * 40 + data[100:]
    single, halves = scan(matcher, data, False), scan(matcher, data, True)
    assert True not in merges
    assert halves == single


def test_labels_still_looked_at_keep_the_order(matcher: Matcher, merges: list[bool]) -> None:
    """Few identifiers in the first half: a single scan still looks at the labels around
    the second half's, so that half is scanned after the first, here."""
    rng = random.Random(3)
    head = "\n".join(prose(rng, 12) for _ in range(300))
    tail = "\n".join(f"{prose(rng, 5)} HKID: {p.hkid} Phone: 9123 4567" for p in PEOPLE[:12])
    data = (head + "\n" + tail + "\n" + "\n".join(prose(rng, 12) for _ in range(100))
            + "\n").encode()
    cut = process._split_point(data, "notes.txt", CONFIG)
    assert cut is not None and data.find(PEOPLE[0].hkid.encode()) > cut
    single, halves = scan(matcher, data, False), scan(matcher, data, True)
    assert merges == [False]
    assert halves == single and single.exposed_fields


def test_small_or_other_texts_are_not_split(monkeypatch: pytest.MonkeyPatch) -> None:
    data = dense_text()
    assert process._split_point(data, "notes.txt", CONFIG) is not None
    with monkeypatch.context() as m:  # the other CPUs are busy: one scan
        m.setattr(process, "_spare_cpu", lambda: False)
        assert process._split_point(data, "notes.txt", CONFIG) is None
    assert process._split_point(data, "notes.txt", ExtractConfig()) is None  # one chunk
    assert process._split_point(b'{"a": 1}\n' * 2000, "x.json", CONFIG) is None
    assert process._split_point("é".encode("latin-1") * 5000, "x.txt", CONFIG) is None


def test_worker_scans_a_local_file_in_halves(matcher: Matcher, merges: list[bool],
                                             tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(dense_text())
    found = []
    for split in (False, True):
        with process.DocumentScanner(matcher, CONFIG, mode="warm", preload_formats=False,
                                     split_large=split) as scanner:
            f = scanner.scan_file(path)
        f.result.details.pop("seconds")
        found.append((f.sha256, f.size, f.result))
    assert found[0] == found[1]


def chunks_of(data: bytes) -> Iterator[bytes]:
    from pipelines.extract.text import chunk_end

    pos = 0
    while pos < len(data):
        end = chunk_end(data, pos, CONFIG.text_chunk_chars)
        yield data[pos:end]
        pos = end


def test_chunks_after_a_chunk_end_are_the_whole_texts() -> None:
    data = dense_text()
    whole = list(chunks_of(data))
    at = sum(len(c) for c in whole[:5])
    assert list(chunks_of(data[at:])) == whole[5:]


@pytest.mark.parametrize("size", [0, 10, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3_000_001])
def test_count_newlines_is_bytes_count(size: int) -> None:
    from pipelines.extract.text import count_newlines

    data = (b"ab\ncd\n\nefg" * (size // 11 + 1))[:size]
    for start, end in ((0, None), (5, size - 3), (size // 2, None), (0, size + 10)):
        want = data.count(b"\n", start, len(data) if end is None else end)
        assert count_newlines(data, start, end) == want
