"""Severity and risk score from the evidence: distinct matched records, record-level
matches (same row / same window), and valid identifiers that are not in the register."""

from __future__ import annotations

import math

from leaksentry.config.matching import SeverityConfig
from pipelines.model import SEVERITIES, Severity

_BASE: dict[Severity, int] = {"none": 0, "low": 25, "medium": 50, "high": 70, "critical": 90}


def assess(records: int, record_level: int, unmatched: int,
           cfg: SeverityConfig) -> tuple[Severity, int]:
    """(severity, risk score 0-100)."""
    level = 0
    if records >= cfg.critical_records:
        level = 4
    elif records >= cfg.high_records:
        level = 3
    elif records >= cfg.medium_records:
        level = 2
    elif records >= cfg.low_records:
        level = 1
    if record_level and cfg.record_level_boost and 0 < level < 4:
        level += 1
    if unmatched >= cfg.unmatched_high:
        level = max(level, 3)
    elif unmatched >= cfg.unmatched_medium:
        level = max(level, 2)
    elif unmatched >= cfg.unmatched_low:
        level = max(level, 1)
    severity = SEVERITIES[level]
    if level == 0:
        return severity, 0
    # within a band, more records (and record-level evidence) score higher
    extra = min(9, int(math.log10(1 + records + record_level) * 3))
    return severity, min(100, _BASE[severity] + extra)
