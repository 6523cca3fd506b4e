"""Every config field is documented (the Datasette way): each field of
leaksentry.config.Settings, walked recursively (every section, every [[sources]] kind's
fields, every alert channel type), appears in examples/leaksentry.toml under its own
section (commented lines count) or in README.md / docs/*.md."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from pydantic import BaseModel

from leaksentry.config import Settings
from leaksentry.config.sources import Politeness

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "leaksentry.toml"


def _models(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def config_fields(model: type[BaseModel] = Settings,
                  section: str = "") -> set[tuple[str, str]]:
    """(section, key as written in TOML) for every leaf field below ``model``."""
    out: set[tuple[str, str]] = set()
    for name, info in model.model_fields.items():
        key = info.alias or name
        inner = _models(info.annotation)
        if not inner:
            out.add((section, key))
        for sub in inner:
            out |= config_fields(sub, f"{section}.{key}".lstrip("."))
    return out


def example_keys(text: str) -> set[tuple[str, str]]:
    """(section, key) of every key line in the example, commented or not, and of the
    keys of inline tables; a (commented) [section] or [[section]] header starts a section."""
    keys: set[tuple[str, str]] = set()
    section = ""
    for line in text.splitlines():
        if m := re.match(r"\s*#?\s*\[\[?([\w.]+)\]\]?", line):
            section = m.group(1)
            continue
        if m := re.match(r'\s*#?\s*"?([\w/]+)"?\s*=', line):
            keys.add((section, m.group(1)))
        keys |= {(section, k) for k in re.findall(r"[{,]\s*(\w+)\s*=", line)}
    return keys


def documented_in_docs(key: str, docs: str) -> bool:
    """`key`, `section.key`, `key = ...` in backticks, or a `key = ...` line."""
    k = re.escape(key)
    return bool(re.search(rf"`(?:[\w.\[\]]+\.)?{k}(?:\s*=[^`\n]*)?`", docs)
                or re.search(rf"^\s*#?\s*{k}\s*=", docs, re.M))


def test_the_walk_sees_every_section_and_kind() -> None:
    fields = config_fields()
    for expected in [("state", "dir"), ("sources", "link_css"), ("sources", "flavor"),
                     ("sources", "channel"), ("alerts.channels", "framing"),
                     ("alerts.channels", "from"), ("matching.kinds", "column"),
                     ("matching.categories", "diagnosis/procedure")]:
        assert expected in fields


def test_every_config_field_is_documented() -> None:
    in_example = example_keys(EXAMPLE.read_text())
    docs = "\n".join(p.read_text() for p in [ROOT / "README.md",
                                              *sorted((ROOT / "docs").glob("*.md"))])
    missing = []
    for section, key in sorted(config_fields()):
        # a source's politeness fields are [crawler]'s, declared once (config.sources)
        where = "crawler" if section == "sources" and key in Politeness.model_fields else section
        if (where, key) in in_example or documented_in_docs(key, docs):
            continue
        missing.append(f"field {where}.{key} is documented nowhere: add it to"
                       f" examples/leaksentry.toml (under [{where}], a commented line with a"
                       " short comment) or to the relevant docs/*.md page")
    assert not missing, "\n".join(missing)
