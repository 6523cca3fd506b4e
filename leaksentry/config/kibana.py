"""[kibana] configuration section (placeholder: the Elasticsearch/Kibana owner fills it in)."""

from __future__ import annotations

from leaksentry.config.base import StrictModel


class KibanaConfig(StrictModel):
    url: str | None = None
