"""Shared pieces of the config models: strict models, durations, secrets."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, SecretStr, field_validator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


class StrictModel(BaseModel):
    """Unknown keys are errors: a typo in the TOML must not be silently ignored.

    ``defer_build``: a model's validator is built on its first use, not when its module
    is imported (importing every config section used to cost ~40 ms of start-up)."""

    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=True,
                              defer_build=True)


def parse_duration(value: Any) -> float:
    """'90s', '2m', '1.5h', '7d' or a number of seconds -> seconds."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("must not be negative")
        return float(value)
    if isinstance(value, str) and (m := _DURATION.match(value)):
        return float(m.group(1)) * _UNITS[m.group(2)]
    raise ValueError(f"invalid duration {value!r} (use e.g. '30s', '2m', '6h', '7d')")


#: A duration field: accepts "2m" style strings or seconds, holds seconds.
Duration = Annotated[float, BeforeValidator(parse_duration)]


def resolve_secret(value: SecretStr | str | None, env: str | None = None,
                   default_env: str | None = None) -> str | None:
    """A secret from the file, else the named environment variable, else the default one."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value:
        return value
    for name in (env, default_env):
        if name and os.environ.get(name):
            return os.environ[name]
    return None


class HttpServiceConfig(StrictModel):
    """Auth and TLS fields shared by the HTTP services leaksentry talks to
    (Elasticsearch/OpenSearch, Kibana). Secrets come from the file, the variable
    named by ``*_env``, or ``<SECRET_ENV_PREFIX>_API_KEY`` / ``_PASSWORD``."""

    SECRET_ENV_PREFIX: ClassVar[str] = "LEAKSENTRY"

    api_key: SecretStr | None = None
    api_key_env: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_env: str | None = None
    #: CA bundle for a private CA; TLS verification is on unless switched off
    ca_cert: Path | None = None
    verify_tls: bool = True
    timeout: Duration = 30.0

    @field_validator("ca_cert", mode="after")
    @classmethod
    def _expand_ca(cls, v: Path | None) -> Path | None:
        return v.expanduser() if v else v

    def secret_api_key(self) -> str | None:
        return resolve_secret(self.api_key, self.api_key_env, f"{self.SECRET_ENV_PREFIX}_API_KEY")

    def secret_password(self) -> str | None:
        return resolve_secret(self.password, self.password_env,
                              f"{self.SECRET_ENV_PREFIX}_PASSWORD")
