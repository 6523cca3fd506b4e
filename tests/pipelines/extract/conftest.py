"""Helpers for extraction tests: planted fictional patients and a way to find them in parts."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import pytest

from leaksentry.config.extract import ExtractConfig
from leaksentry.synth import Patient, patients
from pipelines.extract import Extraction, extract
from pipelines.model import STATUSES, TextPart

_NOT_ALNUM = re.compile(r"[\W_]+")


def canon(text: str) -> str:
    """Upper-case letters and digits only: an identifier written any way becomes canonical."""
    return _NOT_ALNUM.sub("", unicodedata.normalize("NFKC", text).upper())


@dataclass
class Run:
    ex: Extraction
    parts: list[TextPart]

    @property
    def status(self) -> str:
        return self.ex.status

    def where(self, identifier: str) -> list[TextPart]:
        """Parts holding the identifier (in any written form)."""
        want = canon(identifier)
        return [p for p in self.parts if want in canon(p.string)]

    def assert_all_found(self, people: list[Patient]) -> None:
        missing = [p.ref for p in people if not self.where(p.hkid) or not self.where(p.hn)]
        assert not missing, f"records not found: {missing} (status {self.status})"

    def outputs(self) -> str:
        """Everything an extraction says about itself (must never hold an identifier)."""
        return f"{self.ex.status} {self.ex.error} {self.ex.details!r}"


def run(data: bytes, name: str = "", config: ExtractConfig | None = None,
        passwords: tuple[str, ...] = ()) -> Run:
    ex = extract(data, name, config, passwords)
    parts = list(ex.parts())
    assert ex.status in STATUSES
    assert ex.status == "ok" or ex.error, "a non-ok status carries an error"
    if ex.error:
        assert "\n" not in ex.error
    return Run(ex, parts)


def assert_no_identifiers(text: str, people: list[Patient]) -> None:
    flat = canon(text)
    for p in people:
        assert canon(p.hkid) not in flat, f"record {p.ref}'s HKID leaked into output"
        assert canon(p.hn) not in flat, f"record {p.ref}'s hospital number leaked into output"


@pytest.fixture
def people() -> list[Patient]:
    return list(patients(12, seed=3))


def table(people: list[Patient]) -> list[list[str]]:
    rows = [["name", "gender", "hkid", "hospital_no", "procedure"]]
    rows += [[p.name, p.gender, p.hkid, p.hn, p.procedure] for p in people]
    return rows


class Helpers:
    """Test modules are imported with --import-mode=importlib, so helpers come as a fixture."""

    run = staticmethod(run)
    canon = staticmethod(canon)
    table = staticmethod(table)
    no_identifiers = staticmethod(assert_no_identifiers)


@pytest.fixture
def ext() -> type[Helpers]:
    return Helpers


@pytest.fixture(scope="session")
def real_matcher(tmp_path_factory: pytest.TempPathFactory):
    """The real matcher over a 300-record fictional register whose first 12 records are
    the ``people`` fixture (same generator seed); fingerprints built by its Python API."""
    from fixtures_register import register_matcher

    from leaksentry.synth import register_rows

    return register_matcher(tmp_path_factory.mktemp("register"), register_rows(300, seed=3),
                            hkid_column="hkid", hn_column="hn", ref_column="ref")
