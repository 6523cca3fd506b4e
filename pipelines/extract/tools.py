"""Debian command-line readers (antiword, catdoc/catppt, mdbtools) run under the limits.

The document never touches the disk: its bytes go into an anonymous memory file
(``memfd_create``) that the tool opens as ``/proc/<pid>/fd/<n>``; it vanishes with the
last descriptor, even when the worker is killed. Each run gets the time left before the
document's deadline, a memory and CPU cap, and its output is charged to the expanded-
bytes budget as it arrives, so a tool that runs away is stopped at the limit.
"""

from __future__ import annotations

import contextlib
import os
import resource
import select
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator

from leaksentry.redaction import redact_error
from pipelines.extract.node import safe_name
from pipelines.extract.state import Failed, State, Stop

#: address space of one tool run; antiword and mdb-export need a few MB
TOOL_MEMORY = 512 * 1024 * 1024


def available(*names: str) -> bool:
    return all(shutil.which(n) for n in names)


@contextlib.contextmanager
def memory_file(data: bytes) -> Iterator[str]:
    """A path to ``data`` that exists only in memory (and only while the block runs)."""
    fd = os.memfd_create("leaksentry-doc", 0)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view[: 1 << 20]):]
        os.lseek(fd, 0, os.SEEK_SET)
        yield f"/proc/{os.getpid()}/fd/{fd}"
    finally:
        os.close(fd)


def _limits(cpu_seconds: int) -> Callable[[], None]:
    """Child limits: memory, no core files, and CPU time (so a tool orphaned by a killed
    worker still ends)."""

    def apply() -> None:  # pragma: no cover - runs in the child
        resource.setrlimit(resource.RLIMIT_AS, (TOOL_MEMORY, TOOL_MEMORY))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))

    return apply


def run_tool(argv: list[str], state: State, where: str) -> bytes:
    """``argv``'s standard output. A missing tool is ``unsupported``; a failing one
    ``corrupt`` (its first stderr line, scrubbed); time and output are bounded by the
    document's deadline and expanded-bytes budget (Stop)."""
    if not shutil.which(argv[0]):
        raise Failed("unsupported", f"{safe_name(where)}: {argv[0]} is not installed")
    state.tick()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, close_fds=True,
                            preexec_fn=_limits(int(state.config.time_limit) + 2),
                            env={**os.environ, "LC_ALL": "C.UTF-8"})
    assert proc.stdout is not None and proc.stderr is not None
    out = bytearray()
    err = bytearray()
    open_fds = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    try:
        while open_fds:
            left = state.deadline - time.monotonic()
            if left <= 0:
                raise Stop("timeout", f"{safe_name(where)}: {argv[0]} stopped at the time "
                                      f"limit of {state.config.time_limit:g} s per document")
            ready, _, _ = select.select(list(open_fds), [], [], min(left, 1.0))
            for fd in ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    del open_fds[fd]
                    continue
                if open_fds[fd] is out:
                    state.charge(len(chunk), safe_name(where))
                    out += chunk
                elif len(err) < 4096:
                    err += chunk
        code = proc.wait(timeout=max(0.1, state.deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise Stop("timeout", f"{safe_name(where)}: {argv[0]} did not finish in time") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    if code != 0:
        first = err.decode("utf-8", "replace").strip().splitlines()
        why = (redact_error(first[0].replace(argv[-1], "file")) if first
               else f"exit code {code}")
        raise Failed("corrupt", f"{safe_name(where)}: {argv[0]} could not read it: {why}")
    return bytes(out)
