"""[[sources]] and [crawler] configuration (placeholder: the crawler's owner fills it in)."""

from __future__ import annotations

from pydantic import Field

from leaksentry.config.base import StrictModel


class CrawlerConfig(StrictModel):
    """Defaults every source inherits."""


class SourceConfig(StrictModel):
    name: str = Field(min_length=1)
    kind: str
    url: str | None = None
