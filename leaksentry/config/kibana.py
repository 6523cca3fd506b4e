"""[kibana] configuration: where `leaksentry kibana install` imports saved objects.

Secrets from the file or the environment (``api_key_env``/``password_env``,
else ``LEAKSENTRY_KIBANA_API_KEY`` / ``LEAKSENTRY_KIBANA_PASSWORD``).
"""

from __future__ import annotations

from leaksentry.config.base import HttpServiceConfig


class KibanaConfig(HttpServiceConfig):
    SECRET_ENV_PREFIX = "LEAKSENTRY_KIBANA"

    url: str | None = None
    #: Kibana space to install into; the default space when unset
    space: str | None = None
