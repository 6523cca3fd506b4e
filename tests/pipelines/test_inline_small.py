"""`scan_file` of a small plain file runs in the calling process when the scanner allows
it (``inline_small``, what `leaksentry scan` does): the same finding as the worker's,
and no worker is started. A table, an encoded payload or a larger file still goes to
the worker, whose kill and memory limit then stand guard."""

from __future__ import annotations

import base64
import io
import zipfile
from pathlib import Path

import pytest
from fixtures_register import fingerprint_people

from leaksentry import synth
from pipelines.match import Matcher
from pipelines.model import Finding
from pipelines.process import INLINE_MAX_BYTES, DocumentScanner

PEOPLE = list(synth.patients(8, seed=9))


@pytest.fixture(scope="module")
def matcher(tmp_path_factory: pytest.TempPathFactory) -> Matcher:
    return Matcher.load(*fingerprint_people(tmp_path_factory.mktemp("register"), PEOPLE))


def scan(matcher: Matcher, path: Path, inline_small: bool) -> tuple[Finding, bool]:
    """The finding (its timing dropped) and whether a worker was started."""
    with DocumentScanner(matcher, mode="warm", preload_formats=False,
                         inline_small=inline_small) as scanner:
        finding = scanner.scan_file(path)
        started = scanner._pid is not None
    finding.result.details.pop("seconds", None)
    return finding, started


def same(a: Finding, b: Finding) -> bool:
    return (a.sha256, a.size, a.url, a.result) == (b.sha256, b.size, b.url, b.result)


def note(people: list[synth.Patient]) -> str:
    return "".join(f"seen today: {p.name} {p.hkid}\n" for p in people)


@pytest.mark.parametrize("name, text", [
    ("note.txt", note(PEOPLE)),
    ("records.json", '{"patients": [' + ", ".join(f'{{"hkid": "{p.hkid}"}}' for p in PEOPLE)
     + "]}"),
    ("empty-ish.txt", "nothing to see here\n"),
])
def test_small_plain_file_is_scanned_here(matcher: Matcher, tmp_path: Path, name: str,
                                          text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    here, started = scan(matcher, path, inline_small=True)
    assert not started
    worker, started = scan(matcher, path, inline_small=False)
    assert started
    assert same(here, worker)


def _zip_b64() -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("leak.txt", note(PEOPLE[:2]))
    return base64.b64encode(buf.getvalue()).decode()


@pytest.mark.parametrize("name, text", [
    ("table.csv", "name,hkid\n" + "".join(f"{p.name},{p.hkid}\n" for p in PEOPLE)),
    ("mail.txt", "see the attachment\n" + _zip_b64() + "\n"),  # a payload to open
    ("big.txt", note(PEOPLE) + "padding line of prose\n" * (INLINE_MAX_BYTES // 22)),
])
def test_other_files_go_to_the_worker(matcher: Matcher, tmp_path: Path, name: str,
                                      text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    here, started = scan(matcher, path, inline_small=True)
    assert started
    worker, _ = scan(matcher, path, inline_small=False)
    assert same(here, worker)
    assert here.result.matched_records > 0
