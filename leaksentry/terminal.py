"""Stranger-controlled text made inert for a terminal (bottom layer: the CLI's output
and the crawl's log lines both use it).

Control characters (ESC sequences recolour, retitle or clear a terminal; CR and LF
forge lines), DEL, C1 controls and the invisible and bidi-override characters are shown
as escapes (``\\x1b``, ``\\n``, ``\\u202e``). Identifier masking is a different concern
(``leaksentry.redaction``).
"""

from __future__ import annotations

import logging
import re

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
#: the same without LF and TAB: multi-line log records (a stats dump) stay readable
_UNSAFE_IN_LOG = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e"
                            "\u2060-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(m: re.Match[str]) -> str:
    ch = m.group()
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(value: object) -> str:
    """``value`` as text with every control, line-breaking and bidi character escaped."""
    return _UNSAFE.sub(_escaped, str(value))


class EscapeControlsFilter(logging.Filter):
    """A handler filter: log records (URLs, page titles, server messages in them) reach
    the terminal without raw control characters; line breaks of multi-line records
    stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the formatter
            return True
        if _UNSAFE_IN_LOG.search(message):
            record.msg, record.args = _UNSAFE_IN_LOG.sub(_escaped, message), ()
        return True
