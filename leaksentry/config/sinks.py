"""[sinks] configuration section (placeholder: its owner fills it in)."""

from __future__ import annotations

from leaksentry.config.base import StrictModel


class ElasticsearchConfig(StrictModel):
    pass
