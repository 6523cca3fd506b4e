"""[matching] configuration: key and fingerprint files, identifier kinds,
record-level window, severity thresholds.

```toml
[matching]
key = "/etc/leaksentry/key"            # or --key
fingerprints = "/var/lib/leaksentry/fp" # or --fingerprints
window = 300                            # characters: same-record identifiers this close
                                        # in text make a record-level match

[matching.hn]                           # hospital file number layout (all optional)
pattern = 'HN ?\\d{8}[0-9A-Z]'          # ASCII regex; default: HN + 6-10 digits + check
checksum = "none"

[[matching.kinds]]                      # more kinds, matched exactly like hkid/hn
name = "mrn"
pattern = 'MRN-?\\d{7}'
column = "mrn"                          # register column for `fingerprints build`
checksum = "luhn"                       # none | hkid | luhn | mod11

[matching.severity]
critical_records = 100

[matching.categories]                   # labels added to the built-in exposed-field synonyms
name = ["Nom"]                          # (English, Traditional/Simplified Chinese built in)
"diagnosis/procedure" = ["Op Code"]
other = ["Hospital Name"]               # an exact label wins over the built-in keyword rules
```
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from leaksentry.config.base import StrictModel

Checksum = Literal["none", "hkid", "luhn", "mod11"]
RESERVED_KINDS = ("hkid", "hn")


class KindConfig(StrictModel):
    """One identifier kind: how it is written (pattern), its canonical form and checksum.

    ``pattern`` is a Python regex matched against the UTF-8 text with ASCII
    semantics; it is automatically bounded so it never matches inside a
    longer run of letters and digits. The canonical form is NFKC, upper-case
    (``upper``) with the characters in ``remove`` deleted.
    """

    name: str
    pattern: str
    upper: bool = True
    remove: str = " -/()."
    checksum: Checksum = "none"
    column: str | None = None  # register column read by `fingerprints build`

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", v):
            raise ValueError("must be lower-case letters, digits or _ (e.g. 'mrn')")
        return v

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, v: str) -> str:
        try:
            rx = re.compile(v)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        if rx.match(""):
            raise ValueError("pattern must not match the empty string")
        return v


class HnConfig(StrictModel):
    """The hospital file number layout; no public source fixes it (REFERENCE.md).

    With no ``pattern``, the default is ``HN`` followed by 6-10 digits and an
    optional check character, brackets and spaces optional, in ASCII or
    full-width characters.
    """

    enabled: bool = True
    pattern: str | None = None
    upper: bool = True
    remove: str = " -/()."
    checksum: Checksum = "none"

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        if v is not None:
            KindConfig._pattern(v)
        return v


class SeverityConfig(StrictModel):
    """Thresholds on distinct matched records (and on valid identifiers not in the register)."""

    low_records: int = Field(1, ge=1)
    medium_records: int = Field(2, ge=1)
    high_records: int = Field(10, ge=1)
    critical_records: int = Field(100, ge=1)
    # a record-level match (same row / same window) raises the severity one step
    record_level_boost: bool = True
    # valid identifiers that are NOT in the register: someone's data leaked
    unmatched_low: int = Field(3, ge=1)
    unmatched_medium: int = Field(20, ge=1)
    unmatched_high: int = Field(1000, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> SeverityConfig:
        if not (self.low_records <= self.medium_records <= self.high_records
                <= self.critical_records):
            raise ValueError("thresholds must satisfy low <= medium <= high <= critical")
        if not self.unmatched_low <= self.unmatched_medium <= self.unmatched_high:
            raise ValueError("unmatched thresholds must satisfy low <= medium <= high")
        return self


#: the categories of exposed fields, in the order results list them
CATEGORIES = ("name", "gender", "dob", "address", "phone", "diagnosis/procedure", "identifier",
              "other")


class CategoriesConfig(StrictModel):
    """Labels added to the built-in synonym lists of each exposed-field category
    (pipelines/match/exposed.py). Compared after normalisation (NFKC, case, ``_ - .``
    as spaces, camelCase split); a label listed here or built in wins over the keyword
    rules, so ``other = ["Hospital Name"]`` stops "name" from claiming it."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    name: list[str] = Field(default_factory=list)
    gender: list[str] = Field(default_factory=list)
    dob: list[str] = Field(default_factory=list)
    address: list[str] = Field(default_factory=list)
    phone: list[str] = Field(default_factory=list)
    diagnosis_procedure: list[str] = Field(default_factory=list, alias="diagnosis/procedure")
    identifier: list[str] = Field(default_factory=list)
    other: list[str] = Field(default_factory=list)

    @field_validator("*", mode="after")
    @classmethod
    def _labels(cls, v: list[str]) -> list[str]:
        if len(v) > 1000:
            raise ValueError("at most 1000 labels per category")
        out = []
        for label in v:
            label = " ".join(label.split())
            if not label:
                raise ValueError("labels must not be empty")
            if len(label) > 64:
                raise ValueError(f"label longer than 64 characters: {label[:20]!r}...")
            out.append(label)
        return out

    def additions(self) -> dict[str, list[str]]:
        """Category name -> the labels configured for it."""
        return {c: list(getattr(self, c.replace("/", "_"))) for c in CATEGORIES}


class MatchingConfig(StrictModel):
    key: Path | None = None
    fingerprints: Path | None = None
    window: int = Field(300, ge=1, le=100_000)
    hn: HnConfig = Field(default_factory=HnConfig)
    kinds: list[KindConfig] = Field(default_factory=list)
    severity: SeverityConfig = Field(default_factory=SeverityConfig)
    categories: CategoriesConfig = Field(default_factory=CategoriesConfig)
    # context snippets per hit; they keep document text, so only with
    # [privacy] context = "masked-text" (Settings sets 0 otherwise, 3 when unset)
    snippets: int = Field(0, ge=0, le=50)
    snippet_chars: int = Field(40, ge=0, le=500)  # context on each side of a match
    # parts are joined into buffers of about this size and scanned at once
    batch_bytes: int = Field(8 << 20, ge=1 << 10)

    @field_validator("key", "fingerprints", mode="after")
    @classmethod
    def _expand(cls, v: Path | None) -> Path | None:
        return v.expanduser() if v is not None else None

    @field_validator("kinds")
    @classmethod
    def _unique(cls, v: list[KindConfig]) -> list[KindConfig]:
        seen: set[str] = set()
        for k in v:
            if k.name in RESERVED_KINDS:
                raise ValueError(f"kind name {k.name!r} is built in (use [matching.hn])")
            if k.name in seen:
                raise ValueError(f"duplicate kind name {k.name!r}")
            seen.add(k.name)
        if len(v) > 13:
            raise ValueError("at most 13 custom kinds")
        return v
