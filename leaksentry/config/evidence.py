"""[evidence] configuration: the encrypted evidence vault.

The crawler host encrypts hit documents to the security team's age public keys and
must never be able to decrypt them: a private key anywhere the config reaches (an
``AGE-SECRET-KEY-`` string, a recipients file holding one) is a configuration error,
so `config check` and the daemon refuse to start with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from leaksentry.config.base import Duration, StrictModel

#: what marks an age private key (identity file line or pasted string)
SECRET_MARK = "AGE-SECRET-KEY-"

_RECIPIENT_PREFIXES = ("age1", "ssh-ed25519 ", "ssh-rsa ")


def _recipient_lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip()
            .startswith("#")]


def read_recipients(entries: list[str]) -> list[str]:
    """The public keys named by ``recipients``: inline keys as they are, and the lines of
    any recipients file (age's ``-R`` format). Raises ValueError naming the entry when a
    private key is reachable or an entry is neither a key nor a readable file."""
    keys: list[str] = []
    for i, entry in enumerate(entries):
        if SECRET_MARK in entry.upper():
            raise ValueError(
                f"recipients[{i}] is an age private key; the crawler host must hold only"
                " public keys (age1…): use `age-keygen -y` to get the public key")
        if entry.startswith(_RECIPIENT_PREFIXES):
            keys.append(entry.strip())
            continue
        path = Path(entry).expanduser()
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(
                f"recipients[{i}] is neither an age/SSH public key nor a readable"
                f" recipients file ({path}: {getattr(exc, 'strerror', None) or 'not text'})"
            ) from None
        if SECRET_MARK in text.upper() or "PRIVATE KEY-----" in text:
            raise ValueError(
                f"recipients[{i}]: {path} holds a private key (an age identity or SSH"
                " private key); give the public key file instead")
        lines = _recipient_lines(text)
        bad = [ln for ln in lines if not ln.startswith(_RECIPIENT_PREFIXES)]
        if bad or not lines:
            raise ValueError(f"recipients[{i}]: {path} is not an age recipients file"
                             " (one age1…/ssh-ed25519/ssh-rsa public key a line)")
        keys.extend(lines)
    return keys


class EvidenceConfig(StrictModel):
    #: age X25519 public keys (age1…), SSH ed25519/RSA public keys, or paths to
    #: recipients files. Empty: the vault is off.
    recipients: list[str] = Field(default_factory=list)
    #: where encrypted documents are kept (default: STATE_DIR/evidence)
    dir: Path | None = None
    #: hits at or above this severity are kept
    min_severity: Literal["low", "medium", "high", "critical"] = "high"
    #: encrypted documents older than this are deleted by the daemon's retention job
    retention: Duration = 90 * 86400.0
    #: documents larger than this are not kept (the hit records why)
    max_bytes: int = Field(default=64 << 20, ge=1)

    @field_validator("recipients", mode="after")
    @classmethod
    def _public_only(cls, v: list[str]) -> list[str]:
        read_recipients(v)
        return v

    @field_validator("dir", mode="after")
    @classmethod
    def _expand(cls, v: Path | None) -> Path | None:
        return v.expanduser() if v is not None else None

    @property
    def enabled(self) -> bool:
        return bool(self.recipients)
