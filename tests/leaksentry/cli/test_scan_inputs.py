"""`leaksentry scan` on inputs that are not plain files of a sane size (issue 20,
item 2), through the real CLI: a FIFO and a socket in a scanned directory, a symlink to
/dev/zero, a sparse file over the input limit, stdin over the limit, a pipe named on the
command line. Each gets a status and a readable error quickly, never a hang, a memory
blow-up or a silent miss."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from leaksentry import synth
from pipelines.match import build_fingerprints, generate_key, read_key

PATIENTS = list(synth.patients(20, seed=33))
MiB = 1 << 20


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("inputs")
    generate_key(d / "key")
    (d / "register.csv").write_text(
        "ref,hkid\n" + "".join(f"{p.ref},{p.hkid}\n" for p in PATIENTS))
    build_fingerprints(d / "register.csv", read_key(d / "key"), d / "fp")
    (d / "leaksentry.toml").write_text(
        f'[state]\ndir = "{d / "state"}"\n\n[extract]\nmax_input_bytes = {4 * MiB}\n')
    return d


def leak_text() -> bytes:
    return ("".join(f"patient id {p.hkid}\n" for p in PATIENTS[:5])).encode()


def scan(ws: Path, *args: str, stdin: bytes | None = None, limit_config: bool = False
         ) -> tuple[int, list[dict], str, int]:
    """(exit code, JSON lines, stderr, peak resident set in KiB of the CLI and every
    worker it reaped), as a user runs it."""
    cmd = [sys.executable, "-m", "leaksentry", "scan", "--json", "--key", str(ws / "key"),
           "--fingerprints", str(ws / "fp")]
    if limit_config:
        cmd += ["--config", str(ws / "leaksentry.toml")]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([*cmd, *args], stdin=subprocess.PIPE, stdout=out, stderr=err,
                                env={**os.environ, "LEAKSENTRY_HOME": str(ws / "home")})
        timer = threading.Timer(120, proc.kill)  # a hang fails the test, not the run
        timer.start()
        try:
            with contextlib.suppress(BrokenPipeError):  # it stopped reading: the limit
                proc.stdin.write(stdin or b"")
            proc.stdin.close()
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        lines = [json.loads(x) for x in out.read().decode().splitlines() if x.strip()]
        return proc.returncode, lines, err.read().decode(), usage.ru_maxrss


def by_name(lines: list[dict]) -> dict[str, dict]:
    return {Path(d["path"]).name: d for d in lines}


def test_fifo_device_and_sparse_file_in_a_directory(ws: Path, tmp_path: Path) -> None:
    d = tmp_path / "dir"
    d.mkdir()
    (d / "leak.txt").write_bytes(leak_text())
    os.mkfifo(d / "pipe")  # nobody ever writes to it
    (d / "zero").symlink_to("/dev/zero")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(d / "sock"))  # a listening socket nobody should connect to
    with open(d / "sparse.bin", "wb") as f:
        f.truncate(1 << 30)  # 1 GiB that takes no disk and must take no memory
    try:
        code, lines, err, peak = scan(ws, str(d))
    finally:
        sock.close()
    assert code == 1, err  # the leak matched
    docs = by_name(lines)
    assert set(docs) == {"leak.txt", "pipe", "zero", "sock", "sparse.bin"}
    assert docs["leak.txt"]["status"] == "ok" and docs["leak.txt"]["matched_records"] == 5
    assert len(docs["leak.txt"]["sha256"]) == 64
    for name, kind in (("pipe", "FIFO"), ("zero", "character device"), ("sock", "socket")):
        doc = docs[name]
        assert doc["status"] == "unsupported" and kind in doc["error"], doc
        assert doc["sha256"] is None and doc["parts"] == 0
        assert doc["skipped"] == [{"where": name, "status": "unsupported",
                                   "error": doc["error"]}]
    big = docs["sparse.bin"]
    assert big["status"] == "too_large" and str(1 << 30) in big["error"], big
    assert big["sha256"] is None
    assert "Traceback" not in err
    assert f"{d / 'pipe'}: unsupported" in err  # said on stderr as well
    assert peak < 400 * 1024, peak  # KiB (about 100 MiB here): the 1 GiB file was never read


def test_regular_file_over_the_limit_is_too_large_unread(ws: Path, tmp_path: Path) -> None:
    f = tmp_path / "big.txt"
    f.write_bytes(leak_text() * (5 * MiB // len(leak_text())))
    code, lines, err, _ = scan(ws, str(f), limit_config=True)
    assert code == 2, err
    (doc,) = lines
    assert doc["status"] == "too_large" and "input limit of 4194304 bytes" in doc["error"]
    assert doc["sha256"] is None and doc["matched_records"] == 0


def test_a_symlink_to_dev_zero_named_on_the_command_line(ws: Path, tmp_path: Path) -> None:
    (tmp_path / "z").symlink_to("/dev/zero")
    code, lines, _, peak = scan(ws, str(tmp_path / "z"))
    assert code == 2
    assert lines[0]["status"] == "unsupported" and "character device" in lines[0]["error"]
    assert peak < 400 * 1024


def test_stdin_over_the_limit_stops_reading(ws: Path) -> None:
    code, lines, _, _ = scan(ws, "-", stdin=b"x" * (6 * MiB), limit_config=True)
    assert code == 2
    (doc,) = lines
    assert doc["path"] == "-" and doc["status"] == "too_large" and doc["sha256"] is None


def test_stdin_within_the_limit_is_scanned(ws: Path) -> None:
    code, lines, err, _ = scan(ws, "-", stdin=leak_text(), limit_config=True)
    assert code == 1, err
    assert lines[0]["status"] == "ok" and lines[0]["matched_records"] == 5


def test_a_pipe_named_on_the_command_line_is_read(ws: Path, tmp_path: Path) -> None:
    """`scan <(cmd)`: a pipe the user names is read (bounded), unlike one met in a
    walked directory."""
    fifo = tmp_path / "named"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as f:
            f.write(leak_text())

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    code, lines, err, _ = scan(ws, str(fifo))
    writer.join(10)
    assert code == 1, err
    assert lines[0]["status"] == "ok" and lines[0]["matched_records"] == 5
    assert len(lines[0]["sha256"]) == 64


def test_a_file_that_cannot_be_read_is_one_line(ws: Path, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    f = tmp_path / "secret.txt"
    f.write_bytes(leak_text())
    f.chmod(0)
    code, lines, err, _ = scan(ws, str(f))
    assert code == 2 and lines == []
    assert "cannot read" in err and "Traceback" not in err
