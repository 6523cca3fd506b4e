"""Reading a local input (`leaksentry scan PATH`) without trusting what the path is.

A path may name a 1 GiB file, a sparse file of any apparent size, a FIFO nobody writes
to, or a symlink to ``/dev/zero``. So the size is checked with ``stat`` before anything
is read; only regular files are read (explicitly named pipes too, when the caller
allows streams: ``scan <(zcat x.gz)``); devices, sockets and, in a walked directory,
FIFOs are never opened; every read is bounded by the input limit. Messages name no
path (the caller adds its own, made safe), so nothing here quotes a stranger's text.
"""

from __future__ import annotations

import hashlib
import os
import select
import stat
from dataclasses import dataclass
from pathlib import Path

from pipelines.model import Status

__all__ = ["NotRead", "Regular", "inspect", "open_stream", "read_regular", "read_stream"]

_KIND_NAMES = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}
#: O_NONBLOCK: opening a FIFO that changed places with a regular file does not wait for
#: a writer; O_NOCTTY: a terminal never becomes ours
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
_CHUNK = 1 << 20


class NotRead(Exception):
    """The input was not (wholly) read: ``status`` (too_large, unsupported, error) and a
    one-line ``reason`` without the path; ``size`` when stat knew it."""

    def __init__(self, status: Status, reason: str, size: int = 0) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.size = size


@dataclass(frozen=True, slots=True)
class Regular:
    """A regular file as stat saw it; a reader checks that it is still the same file."""

    path: str
    dev: int
    ino: int
    size: int


def too_large(size: int, limit: int) -> NotRead:
    return NotRead("too_large", f"{size} bytes exceeds the input limit of {limit} bytes",
                   size=size)


def inspect(path: str | Path, limit: int, streams: bool = False) -> Regular | None:
    """A readable regular file (opened once to be sure it can be read), or None for a
    pipe the caller may stream (only with ``streams``). Raises :class:`NotRead` for a
    file over ``limit`` and for what is never read, ``OSError`` when the path cannot be
    opened (missing, permission)."""
    st = os.stat(path)  # follows symlinks: a link to /dev/zero is a device
    kind = stat.S_IFMT(st.st_mode)
    if kind == stat.S_IFIFO and streams:
        return None
    if kind != stat.S_IFREG:
        name = _KIND_NAMES.get(kind, "not a regular file")
        raise NotRead("unsupported", f"{name}, not a regular file: not read")
    if st.st_size > limit:  # a sparse file says its size without being read
        raise too_large(st.st_size, limit)
    fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(st.st_mode):
        raise NotRead("unsupported", "changed into something other than a regular file: "
                                     "not read")
    return Regular(str(path), st.st_dev, st.st_ino, st.st_size)


def read_regular(f: Regular, limit: int) -> bytes:
    """The file's bytes: one allocation and one copy from the page cache when its size
    did not change (a second read only sees the end of the file); bounded by ``limit``."""
    fd = os.open(f.path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (f.dev, f.ino) or not stat.S_ISREG(st.st_mode):
            raise NotRead("error", "replaced by another file while waiting to be scanned")
        if st.st_size > limit:
            raise too_large(st.st_size, limit)
        with os.fdopen(fd, "rb", buffering=0, closefd=False) as fh:
            chunks: list[bytes] = []
            total, want = 0, min(st.st_size, limit) + 1
            while total <= limit:
                block = fh.read(max(want - total, _CHUNK))
                if not block:
                    break
                chunks.append(block)
                total += len(block)
    finally:
        os.close(fd)
    if total > limit:  # it grew past the limit after stat
        raise too_large(total, limit)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_stream(fd: int, limit: int) -> tuple[bytes, str]:
    """A pipe's bytes (stdin, a named pipe) and their sha256, hashed in the same pass as
    the read, at most ``limit`` bytes: past it, reading stops (:class:`NotRead`)."""
    chunks: list[bytes] = []
    total = 0
    digest = hashlib.sha256()
    while True:
        try:
            block = os.read(fd, _CHUNK)
        except BlockingIOError:  # a non-blocking pipe with nothing yet: wait for it
            select.select([fd], [], [])
            continue
        if not block:
            break
        total += len(block)
        if total > limit:
            raise NotRead("too_large", f"more than the input limit of {limit} bytes "
                                       f"(reading stopped there)", size=total)
        digest.update(block)
        chunks.append(block)
    return b"".join(chunks), digest.hexdigest()


def open_stream(path: str | Path) -> int:
    """A named pipe opened for :func:`read_stream` (waits for a writer, as ``cat`` does)."""
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
