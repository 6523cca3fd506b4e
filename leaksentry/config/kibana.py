"""[kibana] configuration: where `leaksentry kibana install` imports saved objects.

Secrets from the file or the environment (``api_key_env``/``password_env``,
else ``LEAKSENTRY_KIBANA_API_KEY`` / ``LEAKSENTRY_KIBANA_PASSWORD``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from leaksentry.config.base import Duration, StrictModel, resolve_secret


class KibanaConfig(StrictModel):
    url: str | None = None
    #: Kibana space to install into; the default space when unset
    space: str | None = None
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_env: str | None = None
    ca_cert: Path | None = None
    verify_tls: bool = True
    timeout: Duration = 30.0

    def secret_api_key(self) -> str | None:
        return resolve_secret(self.api_key, self.api_key_env, "LEAKSENTRY_KIBANA_API_KEY")

    def secret_password(self) -> str | None:
        return resolve_secret(self.password, self.password_env, "LEAKSENTRY_KIBANA_PASSWORD")
