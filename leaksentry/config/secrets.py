"""Secrets written into the config file (``config check``).

Every secret a config section accepts can come from the environment instead (its
``*_env`` field); a secret in the file is readable by whoever can read the file, ends up
in backups and in copies pasted into tickets. :func:`secrets_in_file` names each one
(never its value): every ``X`` set next to an ``X_env`` field, and every credential-like
header (``Authorization``, ``X-Api-Key``, ``Cookie``, ``*token*`` ...) in a ``headers``
table.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

#: header names that carry credentials (case-insensitive, anywhere in the name)
CREDENTIAL_HEADER = re.compile(
    r"authorization|cookie|api[-_]?key|token|secret|passw|session|auth|signature|"
    r"private[-_]?key|credential", re.I)


def credential_header(name: str) -> bool:
    """Whether a header of this name carries a credential (dropped cross-origin, and
    flagged when written into the config file)."""
    return bool(CREDENTIAL_HEADER.search(name))


def secrets_in_file(model: BaseModel, where: str = "") -> list[str]:
    """Dotted paths of the secrets set in the file (``alerts.channels[0].password``)."""
    found: list[str] = []
    fields = type(model).model_fields
    for name in fields:
        value = getattr(model, name, None)
        path = f"{where}.{name}" if where else name
        if f"{name}_env" in fields and value not in (None, "", [], {}):
            found.append(f"{path} (use {name}_env)")
        elif name == "headers" and isinstance(value, dict):
            found += [f"{path}.{h}" for h in value if credential_header(str(h))]
        else:
            found += _walk(value, path)
    return found


def _walk(value: Any, path: str) -> list[str]:
    if isinstance(value, BaseModel):
        return secrets_in_file(value, path)
    if isinstance(value, list | tuple):
        return [s for i, v in enumerate(value) for s in _walk(v, f"{path}[{i}]")]
    return []
