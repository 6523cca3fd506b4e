"""Keyed digests: HMAC-SHA256(key, kind + ":" + canonical) truncated to 64 bits.

HMAC is computed from precomputed inner/outer SHA-256 states (RFC 2104):
``copy()`` of a keyed state costs less than ``hmac.new``/``hmac.digest`` per
candidate, which is the scanner's unavoidable per-identifier cost.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import deque
from itertools import repeat
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _hashlib import HASH

_BLOCK = 64


class Digester:
    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def states(self) -> tuple[HASH, HASH]:
        """The keyed inner and outer SHA-256 states, for an inlined hot loop."""
        return self._inner, self._outer

    def many(self, messages: list[bytes]) -> list[bytes]:
        """:meth:`full` of every message, the six hash calls of each driven by ``map`` a
        step at a time (no Python-level loop body per message)."""
        n = len(messages)
        h = type(self._inner)
        inner = list(map(h.copy, repeat(self._inner, n)))
        deque(map(h.update, inner, messages), 0)
        outer = list(map(h.copy, repeat(self._outer, n)))
        deque(map(h.update, outer, map(h.digest, inner)), 0)
        del inner
        return list(map(h.digest, outer))

    def full(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def digest64(self, message: bytes) -> int:
        """The first 8 bytes of the HMAC as a big-endian unsigned integer."""
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return int.from_bytes(outer.digest()[:8], "big")


def digest64(key: bytes, message: bytes) -> int:
    """Reference implementation (tests check :class:`Digester` against it)."""
    return int.from_bytes(hmac.digest(key, message, "sha256")[:8], "big")
