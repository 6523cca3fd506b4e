"""[elasticsearch] configuration section (placeholder: its owner fills it in)."""

from __future__ import annotations

from leaksentry.config.base import StrictModel


class ElasticsearchConfig(StrictModel):
    url: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.url)
