"""leaksentry.toml: read with tomllib, validated with pydantic.

Each section has its own module (``matching``, ``extract``, ``sinks``,
``alerts``, ``sources``, ``daemon``); this module assembles them and turns a
validation error into one line that names the file and the field.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from leaksentry.config.alerts import AlertsConfig
from leaksentry.config.base import StrictModel, resolve_secret
from leaksentry.config.cluster import ClusterConfig
from leaksentry.config.daemon import DaemonConfig
from leaksentry.config.evidence import SECRET_MARK, EvidenceConfig
from leaksentry.config.extract import ExtractConfig
from leaksentry.config.kibana import KibanaConfig
from leaksentry.config.matching import MatchingConfig
from leaksentry.config.privacy import PrivacyConfig
from leaksentry.config.sinks import ElasticsearchConfig
from leaksentry.config.sources import SOURCE_KINDS, CrawlerConfig, SourceConfig
from leaksentry.errors import ConfigError
from leaksentry.paths import default_config_path, default_state_dir

__all__ = ["ConfigError", "Settings", "StateConfig", "format_validation_error", "load_config",
           "read_config"]


class StateConfig(StrictModel):
    #: local state: the SQLite store (unless ``url``), keys, locks, the job store
    dir: Path = Field(default_factory=default_state_dir)
    #: postgresql://user@host:port/db: the store on PostgreSQL, shared by the leader
    #: and workers of a cluster (unset = SQLite in ``dir``); never a password here
    url: str | None = None
    #: the PostgreSQL password: the variable named here, else LEAKSENTRY_STATE_PASSWORD
    #: (else libpq's own: PGPASSWORD, ~/.pgpass)
    password_env: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if not v:
            return None
        parts = urlsplit(v)
        if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
            raise ValueError("must be a postgresql:// URL with a host"
                             " (e.g. postgresql://leaksentry@10.0.0.6:5432/leaksentry)")
        if parts.password is not None:
            raise ValueError("holds a password: put it in the environment variable named by"
                             " [state] password_env (default LEAKSENTRY_STATE_PASSWORD)")
        return v

    def password(self) -> str | None:
        return resolve_secret(None, self.password_env, "LEAKSENTRY_STATE_PASSWORD")

    @field_validator("dir", mode="after")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    @property
    def db(self) -> Path:
        return self.dir / "state.db"


class Settings(StrictModel):
    state: StateConfig = Field(default_factory=StateConfig)
    matching: MatchingConfig = Field(default_factory=MatchingConfig)
    extract: ExtractConfig = Field(default_factory=ExtractConfig)
    elasticsearch: ElasticsearchConfig = Field(default_factory=ElasticsearchConfig)
    kibana: KibanaConfig = Field(default_factory=KibanaConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    crawler: CrawlerConfig = Field(default_factory=CrawlerConfig)
    sources: list[SourceConfig] = Field(default_factory=list)
    daemon: DaemonConfig = Field(default_factory=DaemonConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    evidence: EvidenceConfig = Field(default_factory=EvidenceConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)

    # where it was read from, for messages; not a config key
    _path: Path | None = None

    @field_validator("sources", mode="after")
    @classmethod
    def _unique_names(cls, v: list[SourceConfig]) -> list[SourceConfig]:
        seen: set[str] = set()
        for s in v:
            if s.name in seen:
                raise ValueError(f"duplicate source name {s.name!r}")
            seen.add(s.name)
        return v

    @model_validator(mode="after")
    def _visibility_outlasts_crawls(self) -> Settings:
        """A job a worker still runs must not be handed to a second worker: Redis's
        visibility timeout exceeds the longest crawl the daemon allows."""
        if not self.cluster.enabled:
            return self
        d = self.daemon
        longest = max([float(self.crawler.effective(s).timeout or 0) for s in self.sources]
                      or [float(self.crawler.timeout)])
        need = longest + d.timeout_margin + d.kill_after
        if self.cluster.visibility_timeout <= need:
            msg = (f"{self.cluster.visibility_timeout:g}s must exceed the longest crawl"
                   f" ({longest:g}s timeout + daemon.timeout_margin {d.timeout_margin:g}s +"
                   f" daemon.kill_after {d.kill_after:g}s = {need:g}s): a crawl still running"
                   " would be started again on another worker")
            raise ValidationError.from_exception_data("Settings", [InitErrorDetails(
                type=PydanticCustomError("cluster_visibility", msg),
                loc=("cluster", "visibility_timeout"), input=self.cluster.visibility_timeout)])
        return self

    @model_validator(mode="after")
    def _context_snippets(self) -> Settings:
        """Context snippets keep document text: the matcher makes them only when
        ``[privacy] context = "masked-text"`` (then ``matching.snippets``, default 3)."""
        m = self.matching
        want = (m.snippets if "snippets" in m.model_fields_set else 3) \
            if self.privacy.keeps_text else 0
        if m.snippets != want:
            self.matching = m.model_copy(update={"snippets": want})
        return self

    def source(self, name: str) -> SourceConfig:
        for s in self.sources:
            if s.name == name:
                return s
        known = ", ".join(s.name for s in self.sources) or "none configured"
        raise ConfigError(f"no source named {name!r} (known: {known})")

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def evidence_dir(self) -> Path:
        return self.evidence.dir or self.state.dir / "evidence"


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def format_validation_error(exc: ValidationError, where: str,
                            data: dict[str, Any] | None = None) -> str:
    """One line per problem: ``FILE: field.path: message``; the first is the headline."""
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
        where_in = err["loc"]
        if where_in[:1] == ("sources",) and len(where_in) > 2 and where_in[2] in SOURCE_KINDS:
            where_in = where_in[:2] + where_in[3:]  # the union's tag: the kind, said already
        loc = _loc(where_in)
        if data is not None and where_in and where_in[0] == "sources":
            # name the source too, e.g. sources[2] (pastebin).kind
            try:
                idx = where_in[1]
                name = data["sources"][idx].get("name")
                if name:
                    loc = loc.replace(f"sources[{idx}]", f"sources[{idx}] ({name})", 1)
            except (IndexError, KeyError, TypeError, AttributeError):
                pass
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling)"
        lines.append(f"{where}: {loc}: {msg}")
    return "\n".join(lines)


def _private_key_field(data: object, loc: tuple[int | str, ...] = ()) -> str | None:
    """The field path of the first string value holding an age private key, if any."""
    if isinstance(data, str):
        return _loc(loc) if SECRET_MARK in data.upper() else None
    items = (data.items() if isinstance(data, dict)
             else enumerate(data) if isinstance(data, list) else ())
    for k, v in items:
        found = _private_key_field(v, (*loc, k))
        if found is not None:
            return found
    return None


def read_config(path: Path | str | None = None, *,
                sha256: str | None = None) -> tuple[Settings, bytes]:
    """Read and validate a config file; returns the settings and the exact bytes they
    came from (the daemon snapshots those bytes, so what it validated is what its
    crawls run). No file means the embedded defaults (and no bytes).

    ``sha256``: refuse the file unless its bytes have this hash (a crawl started by
    the daemon is handed the daemon's snapshot by path and hash)."""
    if path is None:
        path = default_config_path()
    if path is None:
        if sha256 is not None and sha256 != hashlib.sha256(b"").hexdigest():
            raise ConfigError("no config file, but a config sha256 was given")
        return Settings(), b""
    path = Path(path).expanduser()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    if sha256 is not None and hashlib.sha256(raw).hexdigest() != sha256.lower():
        raise ConfigError(f"{path}: config file changed after it was validated (its sha256"
                          " is not the one given); refusing to run with it")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    secret_at = _private_key_field(data)
    if secret_at is not None:
        raise ConfigError(
            f"{path}: {secret_at}: holds an age private key ({SECRET_MARK}…); the crawler"
            " host must hold only public keys: remove it (keep identities on the trusted side)")
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path), data)) from None
    settings._path = path
    from leaksentry import redaction  # the configured kinds are masked in every output

    redaction.configure(settings.matching)
    return settings, raw


def load_config(path: Path | str | None = None, *, sha256: str | None = None) -> Settings:
    """Read and validate a config file; no file means the embedded defaults."""
    return read_config(path, sha256=sha256)[0]
