"""What the crawler writes to its log: stranger-controlled text as one redacted line,
and documents as their metadata, never their content."""

from __future__ import annotations

import logging
from typing import Any

from scrapy.logformatter import LogFormatter, LogFormatterResult

from leaksentry.redaction import redact_line


def one_line(text: object, limit: int = 300) -> str:
    """Stranger-controlled text (a URL, a page title, a library's message) as one line
    through the redaction policy: identifiers masked, URL userinfo removed, bounded."""
    return redact_line(" ".join(str(text).split()), limit) or ""


class SafeLogFormatter(LogFormatter):
    """Scrapy's default formatter prints whole items (document content) on
    scraped/dropped/error lines; identifiers must never reach a log."""

    def scraped(self, item: Any, response: Any, spider: Any) -> LogFormatterResult:
        return {"level": logging.DEBUG, "msg": "document from %(src)s: %(item)s",
                "args": {"src": getattr(response, "url", response), "item": item}}

    def dropped(self, item: Any, exception: BaseException, response: Any,
                spider: Any) -> LogFormatterResult:
        return {"level": logging.INFO, "msg": "dropped %(item)s: %(exc)s",
                "args": {"item": item, "exc": one_line(exception)}}

    def item_error(self, item: Any, exception: BaseException, response: Any,
                   spider: Any) -> LogFormatterResult:
        return {"level": logging.ERROR, "msg": "error processing %(item)s",
                "args": {"item": item}}
