"""Compiled hyperscan databases, cached on disk next to the fingerprint file.

Compiling the kinds' patterns costs tens of milliseconds in every process that scans
(each `leaksentry scan`, each crawl subprocess); loading a serialised database costs
well under one. A cache file is named after the fingerprint file and the hash of
everything the database depends on (the expressions, their flags and ids, the mode,
the hyperscan version, the machine), so a change of patterns (a new written form of a
kind, a custom kind in the config) simply misses. Each file carries an HMAC under a
key derived from the register's key: a file that was altered, truncated, written by a
hyperscan it does not fit, or made for another register is ignored, the patterns are
compiled, and the file is rewritten if the directory is writable; when it is not, the
scan goes on with the compiled database. Never an error of its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from leaksentry.paths import write_private

log = logging.getLogger(__name__)

MAGIC = b"LSHSDB1\n"
_LABEL = b"leaksentry hyperscan database cache v1"
_MAC = 32
_MAX_BYTES = 64 << 20  # a database of the kinds' patterns is tens of kB


def patterns_hash(expressions: Sequence[bytes], flags: Sequence[int], mode: int,
                  version: str) -> str:
    """What a compiled database depends on, as one hex digest."""
    h = hashlib.sha256()
    for part in (b"v1", version.encode(), platform.machine().encode(), str(mode).encode(),
                 repr(list(flags)).encode(), str(len(expressions)).encode()):
        h.update(len(part).to_bytes(4, "big") + part)
    for e in expressions:
        h.update(len(e).to_bytes(4, "big") + e)
    return h.hexdigest()


class DatabaseCache:
    """Serialised databases for one fingerprint file (``fp_path``), authenticated with
    ``key`` (the register's key; only a derived key is kept)."""

    def __init__(self, fp_path: Path | str, key: bytes) -> None:
        fp_path = Path(fp_path)
        self.directory = fp_path.parent
        self.stem = fp_path.name
        self._mac_key = hmac.new(key, _LABEL, hashlib.sha256).digest()

    def path(self, digest: str) -> Path:
        return self.directory / f".{self.stem}.hs-{digest[:32]}"

    def get(self, digest: str, compile_: Callable[[], Any], dumpb: Callable[[Any], bytes],
            loadb: Callable[[bytes], Any]) -> Any:
        """The database for ``digest``: from the cache file when it is sound, else
        compiled (and the file written for the next process)."""
        path = self.path(digest)
        blob = self._read(path, digest)
        if blob is not None:
            try:
                return loadb(blob)
            except Exception as exc:  # another hyperscan build, a damaged file
                log.debug("hyperscan cache %s unusable (%s); compiling", path.name, exc)
        db = compile_()
        with contextlib.suppress(Exception):  # the cache is an optimisation only
            self._write(path, digest, dumpb(db))
        return db

    def _mac(self, digest: str, blob: bytes) -> bytes:
        return hmac.new(self._mac_key, digest.encode() + b"\n" + blob, hashlib.sha256).digest()

    def _read(self, path: Path, digest: str) -> bytes | None:
        try:
            with open(path, "rb") as f:
                data = f.read(_MAX_BYTES + 1)
        except OSError:
            return None
        if len(data) > _MAX_BYTES or not data.startswith(MAGIC):
            return None
        mac, blob = data[len(MAGIC):len(MAGIC) + _MAC], data[len(MAGIC) + _MAC:]
        if not hmac.compare_digest(mac, self._mac(digest, blob)):
            log.debug("hyperscan cache %s failed its check; compiling", path.name)
            return None
        return blob

    def _write(self, path: Path, digest: str, blob: bytes) -> None:
        try:
            write_private(path, MAGIC + self._mac(digest, blob) + blob)
        except OSError as exc:  # a read-only directory: compile in every process
            log.debug("hyperscan cache not written to %s (%s)", self.directory, exc.strerror)
