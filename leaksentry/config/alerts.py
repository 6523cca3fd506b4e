"""[alerts] configuration: channels (`[[alerts.channels]]`), routing rules
(`[[alerts.rules]]`), dedupe, digests, retries.

Secrets (SMTP password, webhook signing secret, Slack/Teams webhook URLs,
which are bearer secrets themselves) may be given in the file or, better,
named by an ``*_env`` field and read from the environment at send time.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from leaksentry.config.base import Duration, StrictModel, resolve_secret
from leaksentry.errors import ConfigError

SeverityName = Literal["low", "medium", "high", "critical"]
#: severities batched into digests unless configured
_DIGESTED: tuple[SeverityName, ...] = ("low",)


class _ChannelBase(StrictModel):
    name: str = Field(min_length=1)
    #: at most this many messages per `rate_window` on this channel; more go into its digest
    rate_limit: int | None = Field(default=None, ge=1)
    rate_window: Duration = 3600.0
    timeout: Duration = 10.0


class EmailChannel(_ChannelBase):
    model_config = ConfigDict(**StrictModel.model_config, populate_by_name=True)

    type: Literal["email"]
    host: str
    port: int | None = Field(default=None, ge=1, le=65535)
    #: "starttls" (port 587), "tls" (implicit TLS, port 465) or "none" (local relay only)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    password_env: str | None = None
    from_addr: str = Field(alias="from", default="leaksentry@localhost")
    to: list[str] = Field(min_length=1)
    #: CA bundle to trust (a private CA); the system store otherwise
    ca_file: str | None = None

    @property
    def effective_port(self) -> int:
        if self.port:
            return self.port
        return {"starttls": 587, "tls": 465, "none": 25}[self.security]

    def secret_password(self) -> str | None:
        return resolve_secret(self.password, self.password_env, "LEAKSENTRY_SMTP_PASSWORD")


class _HttpChannel(_ChannelBase):
    url: SecretStr | None = None
    url_env: str | None = None
    ca_file: str | None = None

    @model_validator(mode="after")
    def _has_url(self) -> _HttpChannel:
        if not self.url and not self.url_env:
            raise ValueError("set url or url_env")
        return self

    def secret_url(self) -> str:
        url = resolve_secret(self.url, self.url_env)
        if not url:
            raise ConfigError(f"alerts channel {self.name!r}: environment variable"
                              f" {self.url_env} (url_env) is not set")
        return url


class WebhookChannel(_HttpChannel):
    type: Literal["webhook"]
    #: HMAC-SHA256 signing secret (X-LeakSentry-Signature); strongly recommended
    secret: SecretStr | None = None
    secret_env: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    def signing_secret(self) -> str | None:
        return resolve_secret(self.secret, self.secret_env)


class SlackChannel(_HttpChannel):
    type: Literal["slack"]


class TeamsChannel(_HttpChannel):
    type: Literal["teams"]


class SyslogChannel(_ChannelBase):
    type: Literal["syslog"]
    host: str = "127.0.0.1"
    #: default 514 (udp, tcp) or 6514 (tls, RFC 5425)
    port: int | None = Field(default=None, ge=1, le=65535)
    #: "tls" is TCP inside TLS (RFC 5425), the server's certificate checked against
    #: ``ca_file`` (else the system store) and ``host``
    protocol: Literal["udp", "tcp", "tls"] = "udp"
    #: tcp/tls framing (RFC 6587): "octet-counting" ("LEN MSG", RFC 5425's) or
    #: "non-transparent" (one message per line, what many plain-TCP collectors expect)
    framing: Literal["octet-counting", "non-transparent"] = "octet-counting"
    ca_file: str | None = None
    #: a client certificate (PEM; ``client_key`` when the key is a separate file) for
    #: collectors that authenticate senders (mutual TLS)
    client_cert: str | None = None
    client_key: str | None = None
    facility: int = Field(default=4, ge=0, le=23)  # 4 = security/authorization
    app_name: str = "leaksentry"

    @property
    def effective_port(self) -> int:
        return self.port or (6514 if self.protocol == "tls" else 514)

    @model_validator(mode="after")
    def _consistent(self) -> SyslogChannel:
        tls_only = [k for k in ("ca_file", "client_cert", "client_key") if getattr(self, k)]
        if tls_only and self.protocol != "tls":
            raise ValueError(f"{', '.join(tls_only)}: only for protocol = \"tls\"")
        if self.client_key and not self.client_cert:
            raise ValueError("client_key without client_cert")
        if self.protocol == "udp" and "framing" in self.model_fields_set:
            raise ValueError("framing: only for protocol = \"tcp\" or \"tls\" (a UDP"
                             " datagram is one message)")
        return self


ChannelConfig = Annotated[
    EmailChannel | WebhookChannel | SlackChannel | TeamsChannel | SyslogChannel,
    Field(discriminator="type"),
]


class RuleConfig(StrictModel):
    """Route hits to channels. Empty `sources`/`kinds` match everything."""

    name: str = ""
    min_severity: SeverityName = "low"
    sources: list[str] = Field(default_factory=list)
    kinds: list[str] = Field(default_factory=list)
    channels: list[str] = Field(min_length=1)


class AlertsConfig(StrictModel):
    enabled: bool = True
    #: hits below this never alert, whatever the rules say
    min_severity: SeverityName = "low"
    channels: list[ChannelConfig] = Field(default_factory=list)
    #: no rules = every hit at or above min_severity goes to every channel
    rules: list[RuleConfig] = Field(default_factory=list)
    #: the same document (sha256) or the same set of records seen again within this
    #: window is a re-sighting of the first alert, not a new page
    dedupe_window: Duration = 7 * 86400.0
    #: "message": a short low-priority re-sighting notice in the first alert's thread;
    #: "digest": re-sightings go into the next digest
    resightings: Literal["message", "digest"] = "message"
    #: these severities are batched into one digest per channel
    digest_severities: list[SeverityName] = Field(default_factory=lambda: list(_DIGESTED))
    digest_interval: Duration = 3600.0
    #: health alerts (a source went silent or keeps failing) go here; None = every channel
    health_channels: list[str] | None = None
    #: delivery: attempts before a message becomes a dead letter, backoff base and cap
    max_attempts: int = Field(default=8, ge=1)
    backoff_base: Duration = 30.0
    backoff_max: Duration = 3600.0
    #: a delivery in progress is retried after this long if its worker died
    lease: Duration = 300.0
    #: how many masked identifiers and record refs an alert lists
    show_identifiers: int = Field(default=5, ge=0, le=50)
    show_record_refs: int = Field(default=20, ge=0, le=1000)

    @field_validator("channels", mode="after")
    @classmethod
    def _unique(cls, v: list[ChannelConfig]) -> list[ChannelConfig]:
        seen: set[str] = set()
        for c in v:
            if c.name in seen:
                raise ValueError(f"duplicate channel name {c.name!r}")
            seen.add(c.name)
        return v

    @model_validator(mode="after")
    def _known_channels(self) -> AlertsConfig:
        names = {c.name for c in self.channels}
        refs = [(f"rules ({r.name or i})", n) for i, r in enumerate(self.rules) for n in r.channels]
        refs += [("health_channels", n) for n in self.health_channels or []]
        for where, n in refs:
            if n not in names:
                known = ", ".join(sorted(names)) or "none configured"
                raise ValueError(f"{where}: unknown channel {n!r} (known: {known})")
        return self

    def channel(self, name: str) -> ChannelConfig:
        for c in self.channels:
            if c.name == name:
                return c
        known = ", ".join(c.name for c in self.channels) or "none configured"
        raise ConfigError(f"no alert channel named {name!r} (known: {known})")
