"""A fingerprinted register of fictional patients, laid out as the CLI expects it:
``ROOT/register.csv``, a new key at ``ROOT/key`` and the fingerprints at ``ROOT/fp``.
Test modules import these by name (``from fixtures_register import register_matcher``)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def fingerprint_register(root: Path, rows: Iterable[list[str]],
                         **columns: str) -> tuple[Path, Path]:
    """Write ``rows`` (header first) as the register, make a key, build the fingerprints
    (``columns``: build_fingerprints' hkid_column/hn_column/ref_column); (key, fp)."""
    from pipelines.match import build_fingerprints, generate_key, read_key

    root.mkdir(parents=True, exist_ok=True)
    with open(root / "register.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    generate_key(root / "key")
    build_fingerprints(root / "register.csv", read_key(root / "key"), root / "fp", **columns)
    return root / "key", root / "fp"


def fingerprint_people(root: Path, people: Iterable[Any],
                       fields: Sequence[str] = ("ref", "hkid")) -> tuple[Path, Path]:
    """:func:`fingerprint_register` over the patients' ``fields`` (the header names them)."""
    rows = [list(fields), *([getattr(p, f) for f in fields] for p in people)]
    return fingerprint_register(root, rows)


def register_matcher(root: Path, rows: Iterable[list[str]], **columns: str) -> Any:
    """The real :class:`pipelines.match.Matcher` over :func:`fingerprint_register`."""
    from pipelines.match import Matcher

    return Matcher.load(*fingerprint_register(root, rows, **columns))
