"""Shared pieces of the matcher benchmarks: synthetic text, timing, memory.

Everything is generated (leaksentry.synth); nothing printed is an identifier.
"""

from __future__ import annotations

import hmac
import os
import random
import re
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

from leaksentry import synth

_EN = [
    "the", "patient", "was", "admitted", "to", "the", "surgical", "ward", "on", "monday",
    "and", "reviewed", "by", "the", "team", "before", "discharge", "with", "follow", "up",
    "at", "the", "clinic", "in", "two", "weeks", "tel", "2345", "6789", "ref", "no", "12",
    "operation", "notes", "attached", "please", "see", "the", "summary", "for", "details",
    "of", "the", "procedure",
]
_ZH = list("病人於門診覆診出院後需要跟進手術記錄及化驗結果"
           "醫院資料香港身份證號碼住院病房護士醫生報告")


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def timed(out: dict[str, float], name: str):
    t = time.perf_counter()
    yield
    out[name] = time.perf_counter() - t


def filler(rng: random.Random, approx_bytes: int) -> str:
    """Mixed English/Chinese prose of about ``approx_bytes`` UTF-8 bytes."""
    out: list[str] = []
    n = 0
    while n < approx_bytes:
        if rng.random() < 0.5:
            w = rng.choice(_EN)
            out.append(w + " ")
            n += len(w) + 1
        else:
            k = rng.randrange(4, 16)
            out.append("".join(rng.choice(_ZH) for _ in range(k)) + "，")
            n += 3 * k + 3
        if rng.random() < 0.02:
            out.append("\n")
    return "".join(out)


def mixed_text(total_bytes: int, every: int, tokens: Callable[[random.Random], str],
               seed: int = 1) -> str:
    """~``total_bytes`` of prose with one token from ``tokens`` per ~``every`` bytes.

    Built from a pool of filler blocks so that 100 MB is generated in seconds.
    """
    rng = random.Random(seed)
    pool = [filler(rng, every) for _ in range(64)]
    parts: list[str] = []
    n = 0
    while n < total_bytes:
        block = rng.choice(pool)
        parts.append(block)
        parts.append(" " + tokens(rng) + " ")
        n += len(block.encode()) + 12
    return "".join(parts)


def token_source(registered: list[str]) -> Callable[[random.Random], str]:
    """HKID-shaped tokens: registered ones in any written form, unregistered valid ones,
    wrong check digits and look-alikes, in a fixed mix."""

    def pick(rng: random.Random) -> str:
        x = rng.random()
        if x < 0.3:
            return synth.written_hkid(rng.choice(registered), rng)
        if x < 0.6:
            return synth.hkid(rng)
        if x < 0.9:
            return synth.invalid_hkid(rng)
        return "X" + synth.hkid(rng) + "Z"  # inside a longer alphanumeric run

    return pick


def fmt_rate(nbytes: int, seconds: float) -> str:
    return f"{nbytes / 1e6 / seconds:,.0f} MB/s"


def report(rows: list[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")


def machine_speed() -> float:
    """CPU seconds for 10M empty Python loop iterations (about 0.2 s on an idle core):
    printed beside the figures so a reader can tell a slow run from a loaded machine."""
    c = time.process_time()
    for _ in range(10_000_000):
        pass
    return time.process_time() - c


NAIVE = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{1,2})\s?(\d{6})\s?\(?([0-9Aa])\)?(?![A-Za-z0-9])")


def naive_scan(text: str, key: bytes, digests: set[int]) -> tuple[int, int]:
    """What one writes first: regex, check digit, HMAC per candidate, set lookup."""
    from leaksentry.identifiers.hkid import is_valid_canonical

    found = unmatched = 0
    for m in NAIVE.finditer(text):
        canonical = (m.group(1) + m.group(2) + m.group(3)).upper()
        if not is_valid_canonical(canonical):
            continue
        d = int.from_bytes(hmac.new(key, b"hkid:" + canonical.encode(), "sha256").digest()[:8],
                           "big")
        if d in digests:
            found += 1
        else:
            unmatched += 1
    return found, unmatched
