"""Writing leaksentry.toml files (the demo, tests): the standard library reads
TOML but does not write it, and the few shapes a config needs fit here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def value(v: Any) -> str:
    """A TOML value: bool, number, string (or Path), list, inline table."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str | Path):
        return json.dumps(str(v), ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(v, list | tuple):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def table(header: str, fields: dict[str, Any]) -> str:
    """``[header]`` (or ``[[header]]``) and its ``key = value`` lines; None values are left out."""
    lines = [header, *(f"{k} = {value(v)}" for k, v in fields.items() if v is not None)]
    return "\n".join(lines) + "\n"


def dumps(data: dict[str, Any]) -> str:
    """Top-level tables (dicts) and arrays of tables (lists of dicts), in order."""
    out: list[str] = []
    for key, v in data.items():
        if isinstance(v, dict):
            out.append(table(f"[{key}]", v))
        elif isinstance(v, list) and all(isinstance(t, dict) for t in v):
            out += [table(f"[[{key}]]", t) for t in v]
        else:
            raise TypeError(f"{key}: top-level values must be tables or arrays of tables")
    return "\n".join(out)
