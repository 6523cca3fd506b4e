"""The on-disk cache of compiled hyperscan databases (pipelines/match/hscache.py): a
second process loads instead of compiling, and a stale, altered, foreign or unwritable
cache falls back to compiling with identical results."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from leaksentry import synth
from pipelines.match import Matcher, finder
from pipelines.match.hscache import MAGIC
from pipelines.model import TextPart

pytestmark = pytest.mark.skipif(not finder.HAVE_HYPERSCAN, reason="hyperscan not installed")


@pytest.fixture()
def fp(fp_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the session's fingerprints, and no database compiled yet in
    this process."""
    shutil.copy(fp_dir / "fp", tmp_path / "fp")
    shutil.copy(fp_dir / "key", tmp_path / "key")
    os.chmod(tmp_path / "key", 0o600)
    monkeypatch.setattr(finder, "_DB_CACHE", {})
    return tmp_path / "fp"


def caches(fp: Path) -> list[Path]:
    return sorted(fp.parent.glob(f".{fp.name}.hs-*"))


def text(patients: list[synth.Patient]) -> bytes:
    return "".join(f"id {p.hkid} hn {p.hn}\n" for p in patients[:30]).encode()


def summary(m: Matcher, data: bytes) -> tuple:
    r = m.scan([TextPart(data, "x.txt")])
    return r.matched_records, tuple(r.record_refs), tuple((x.masked, x.where) for x in r.matches)


COMPILE_FORBIDDEN = textwrap.dedent("""
    import sys, types, hyperscan
    from pipelines.match import finder

    class Refusing:  # hyperscan.Database whose compile() fails the test
        def __init__(self, *a, **k):
            pass

        def compile(self, *a, **k):
            raise SystemExit("compiled instead of loading the cache")

    proxy = types.SimpleNamespace(**{n: getattr(hyperscan, n) for n in dir(hyperscan)})
    proxy.Database = Refusing
    finder.hyperscan = proxy
    from pipelines.match import Matcher
    from pipelines.model import TextPart
    m = Matcher.load(sys.argv[1], sys.argv[2], engine="hyperscan")
    r = m.scan([TextPart(sys.stdin.buffer.read(), "x.txt")])
    print(r.matched_records)
""")


def test_a_second_process_loads_the_cached_databases(fp: Path, patients) -> None:
    first = Matcher.load(fp.parent / "key", fp, engine="hyperscan")
    files = caches(fp)
    assert len(files) == 2  # the full patterns and the narrow ones
    for f in files:
        assert f.read_bytes().startswith(MAGIC)
        assert f.stat().st_mode & 0o777 == 0o600
    expected = summary(first, text(patients))
    proc = subprocess.run([sys.executable, "-c", COMPILE_FORBIDDEN, str(fp.parent / "key"),
                           str(fp)], input=text(patients), capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    assert int(proc.stdout) == expected[0] == 30


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "other_key"])
def test_a_bad_cache_file_is_compiled_over(fp: Path, patients, monkeypatch, damage) -> None:
    reference = summary(Matcher.load(fp.parent / "key", fp, engine="hyperscan"),
                        text(patients))
    for f in caches(fp):
        data = bytearray(f.read_bytes())
        if damage == "flip":
            data[-100] ^= 0xFF
        elif damage == "truncate":
            data = data[: len(data) // 2]
        elif damage == "garbage":
            data = bytearray(MAGIC + os.urandom(5000))
        else:  # made for another register (another key): its check fails
            from pipelines.match.hscache import DatabaseCache

            other = DatabaseCache(fp, os.urandom(32))
            digest = f.name.rsplit("-", 1)[1]
            blob = bytes(data[len(MAGIC) + 32:])
            data = bytearray(MAGIC + other._mac(digest, blob) + blob)
        f.write_bytes(bytes(data))
    monkeypatch.setattr(finder, "_DB_CACHE", {})
    again = Matcher.load(fp.parent / "key", fp, engine="hyperscan")
    assert summary(again, text(patients)) == reference
    # and the file was rewritten sound: the next process loads it
    proc = subprocess.run([sys.executable, "-c", COMPILE_FORBIDDEN, str(fp.parent / "key"),
                           str(fp)], input=text(patients), capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()


def test_other_patterns_miss_the_cache(fp: Path, patients, monkeypatch) -> None:
    from leaksentry.config.matching import MatchingConfig

    Matcher.load(fp.parent / "key", fp, engine="hyperscan")
    before = set(caches(fp))
    monkeypatch.setattr(finder, "_DB_CACHE", {})
    cfg = MatchingConfig.model_validate(
        {"kinds": [{"name": "staff", "pattern": r"ST[0-9]{6}", "checksum": "none"}]})
    Matcher.load(fp.parent / "key", fp, cfg, engine="hyperscan")
    assert set(caches(fp)) > before  # new files for the new pattern set; old ones kept


def test_an_unwritable_directory_still_scans(fp: Path, patients, monkeypatch) -> None:
    """Where the cache cannot be written (a read-only directory; simulated by a missing
    one, since root writes anywhere), every process compiles and scans the same."""
    from pipelines.match import hscache

    monkeypatch.setattr(hscache.DatabaseCache, "path",
                        lambda self, digest: fp.parent / "missing" / f"x-{digest[:8]}")
    m = Matcher.load(fp.parent / "key", fp, engine="hyperscan")
    assert summary(m, text(patients))[0] == 30
    assert caches(fp) == [] and not (fp.parent / "missing").exists()
