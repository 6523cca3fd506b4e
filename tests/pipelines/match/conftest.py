"""Fixtures for the matcher tests: a key, a register of fictional patients and its
fingerprint file (built once per session; building is the slow part)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from leaksentry import synth
from leaksentry.config.matching import MatchingConfig
from pipelines.match import Matcher, build_fingerprints, generate_key, read_key
from pipelines.match.speedups import speedups

N_PATIENTS = 300


@pytest.fixture(scope="session")
def fp_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("fp")
    generate_key(d / "key")
    with open(d / "register.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(synth.register_rows(N_PATIENTS, seed=7))
    build_fingerprints(d / "register.csv", read_key(d / "key"), d / "fp")
    return d


@pytest.fixture(scope="session")
def patients() -> list[synth.Patient]:
    return list(synth.patients(N_PATIENTS, seed=7))


@pytest.fixture(scope="session")
def key(fp_dir: Path) -> bytes:
    return read_key(fp_dir / "key")


@pytest.fixture(scope="session",
                params=["hyperscan+C", "hyperscan+python", "re+C", "re+python"])
def matcher(request: pytest.FixtureRequest, fp_dir: Path) -> Matcher:
    """Both engines, each with the C speedups and with the pure-Python path; every
    scanner test runs on each."""
    engine, path = request.param.split("+")
    if path == "C" and speedups() is None:
        pytest.skip("the C speedups are not built")
    # snippets on (the [privacy] context = "masked-text" opt-in) so their masking is tested
    return Matcher.load(fp_dir / "key", fp_dir / "fp", MatchingConfig(snippets=3),
                        engine=engine, speedups=path == "C")
