"""Daemon logging: text for a terminal, JSON Lines for journald/SIEM ingestion.

Fields passed with ``extra={...}`` (source, outcome, job, ...) become JSON
keys, so log pipelines can filter on them without parsing messages.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from leaksentry.redaction import install_log_redaction

#: attributes every LogRecord has; anything else came from ``extra``
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, str | int | float | bool | None] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool | None) \
                    else str(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(out, ensure_ascii=False)


def setup_logging(fmt: str = "text", level: str = "INFO") -> None:
    """Configure the root logger once for the daemon (replacing earlier handlers)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    install_log_redaction()  # every record through the redaction policy
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # client libraries log every request (and expected 404s as warnings); the sinks
    # and alert code log what matters about them under leaksentry.*
    for name, lvl in (("opensearch", logging.ERROR), ("elasticsearch", logging.ERROR),
                      ("elastic_transport", logging.ERROR), ("httpx", logging.WARNING),
                      ("httpcore", logging.WARNING), ("urllib3", logging.WARNING)):
        logging.getLogger(name).setLevel(max(root.level, lvl))
    # APScheduler logs every job execution at INFO; keep it to warnings, and leave
    # skipped and missed runs to the daemon's own log lines and metrics
    logging.getLogger("apscheduler").setLevel(max(root.level, logging.WARNING))
    for name in ("apscheduler.scheduler", "apscheduler.executors.default",
                 "apscheduler.executors.crawls"):
        lg = logging.getLogger(name)
        if not any(isinstance(f, _SkipRoutine) for f in lg.filters):
            lg.addFilter(_SkipRoutine())


class _SkipRoutine(logging.Filter):
    """Drops APScheduler's per-occurrence warnings the daemon reports itself."""

    ROUTINE = ("maximum number of running instances reached", "was missed by")

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        return not any(r in msg for r in self.ROUTINE)
