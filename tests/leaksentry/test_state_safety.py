"""State and disk (issue 20, item 4), through the real CLI (subprocesses).

* A damaged state file (garbage, or a real one truncated) makes every command fail with
  one line naming the file, exit 2 — never an empty status, never a traceback.
* The state store, its WAL and SHM, and every file a command creates in the state
  directory are the owner's alone (0600, directories 0700), whatever the caller's umask.
* A full disk: ``scan --index`` ends with one line and exit 2, and the store stays
  intact; a crawl stops and records its run as an error (the store keeps a small
  reserve file for that record; without it the crawl says so in one line, exit 2).

The full disk is real: a small tmpfs mounted for the test (needs root, as on the test
machines here; RLIMIT_FSIZE would fake EFBIG rather than ENOSPC, and SQLite reports the
two differently). Without root the disk-full tests are skipped and say why.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from leaksentry import synth
from leaksentry.store import Store
from leaksentry.store.runs import record_run
from pipelines.match import build_fingerprints, generate_key, read_key
from pipelines.model import RunSummary

PEOPLE = list(synth.patients(40, seed=77))


def cli(*args: str, cwd: Path, umask: int = 0o022) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "LEAKSENTRY_HOME": str(cwd / "home")}
    env.pop("LEAKSENTRY_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "leaksentry", *args], capture_output=True,
                          text=True, timeout=240, env=env, cwd=cwd,
                          preexec_fn=lambda: os.umask(umask))


def one_line(r: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A config (state in ./state, one watch source), key, fingerprints, a leak file."""
    generate_key(tmp_path / "key")
    reg = tmp_path / "register.csv"
    reg.write_text("ref,hkid\n" + "".join(f"{p.ref},{p.hkid}\n" for p in PEOPLE))
    build_fingerprints(reg, read_key(tmp_path / "key"), tmp_path / "fp")
    (tmp_path / "leak.txt").write_text(f"ids {PEOPLE[0].hkid} {PEOPLE[1].hkid}\n")
    write_config(tmp_path, tmp_path / "state")
    return tmp_path


def write_config(root: Path, state: Path, sources: str = "") -> Path:
    cfg = root / "leaksentry.toml"
    cfg.write_text(f'[state]\ndir = "{state}"\n\n[daemon]\nmetrics = false\n\n[matching]\n'
                   f'key = "{root / "key"}"\nfingerprints = "{root / "fp"}"\n\n'
                   + (sources or '[[sources]]\nname = "w"\nkind = "watch"\n'
                                 'url = "http://127.0.0.1:9/x"\n'))
    return cfg


COMMANDS = [("status",), ("hits",), ("alerts", "list"), ("es", "spool"), ("crawl", "w"),
            ("run",), ("evidence", "list"),
            ("scan", "--index", "leak.txt")]


def _damage_garbage(db: Path) -> None:
    db.write_bytes(os.urandom(8192))


def _damage_truncated(db: Path) -> None:
    store = Store(db)
    now = datetime.now(UTC)
    with store.transaction() as tx:
        for _ in range(2000):
            record_run(tx, RunSummary("w", now, now, "error", error="e" * 300),
                       unhealthy_after=3)
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    os.truncate(db, db.stat().st_size // 2)


@pytest.mark.parametrize("damage", [_damage_garbage, _damage_truncated],
                         ids=["garbage", "truncated"])
def test_a_damaged_state_file_fails_every_command_in_one_line(ws: Path, damage) -> None:
    db = ws / "state" / "state.db"
    db.parent.mkdir()
    damage(db)
    for args in COMMANDS:
        r = cli(*args, "--config", str(ws / "leaksentry.toml"), cwd=ws)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        one_line(r, str(db), "damaged")
        assert r.stdout.strip() == "", (args, r.stdout)


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode)
            for p in [root, *root.rglob("*")]}


def test_state_files_are_owner_only_whatever_the_umask(ws: Path, tmp_path: Path) -> None:
    os.umask(old := os.umask(0o022))  # the library alone, in this process, umask 022
    try:
        os.umask(0o022)
        lib = tmp_path / "lib" / "state.db"
        store = Store(lib)
        with store.transaction() as tx:  # WAL and SHM exist while it is open
            record_run(tx, RunSummary("w", datetime.now(UTC), datetime.now(UTC), "ok"),
                       unhealthy_after=3)
        modes = _modes(lib.parent)
        store.close()
    finally:
        os.umask(old)
    assert {"state.db", "state.db-wal", "state.db-shm"} <= set(modes), modes
    assert all(m == 0o600 for name, m in modes.items() if name != "."), modes
    assert modes["."] == 0o700
    # an older, wider state file is narrowed when opened
    lib.chmod(0o644)
    Store(lib).close()
    assert stat.S_IMODE(lib.stat().st_mode) == 0o600
    # the CLI, started with umask 022: every file and directory it makes in the state dir
    for args in (("scan", "--index", "leak.txt"), ("crawl", "w"), ("status",)):
        cli(*args, "--config", str(ws / "leaksentry.toml"), cwd=ws)
    # the daemon: its job store, lock and info files, until it is stopped
    env = {**os.environ, "LEAKSENTRY_HOME": str(ws / "home")}
    daemon = subprocess.Popen([sys.executable, "-m", "leaksentry", "run", "--config",
                               str(ws / "leaksentry.toml")], cwd=ws, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              preexec_fn=lambda: os.umask(0o022))
    try:
        for _ in range(300):
            if (ws / "state" / "scheduler.db").exists() or daemon.poll() is not None:
                break
            time.sleep(0.1)
        time.sleep(1.0)
    finally:
        daemon.terminate()
        daemon.wait(60)
    assert (ws / "state" / "scheduler.db").exists()
    modes = _modes(ws / "state")
    assert "state.db" in modes, modes
    for name, mode in modes.items():
        path = ws / "state" / name
        assert mode == (0o700 if path.is_dir() else 0o600), (name, oct(mode))


# -- a full disk -----------------------------------------------------------------------

@pytest.fixture
def tiny_fs(tmp_path: Path):
    """A 3 MiB tmpfs (real ENOSPC); skipped where mounting is not allowed."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a real full disk needs a tmpfs mount (root)")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(fs: Path, leave: int) -> Path:
    """Fill ``fs`` up, then free ``leave`` bytes: the next writes run out of space."""
    filler = fs / "filler"
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def many_leaks(d: Path, n: int) -> list[str]:
    d.mkdir(exist_ok=True)
    for i in range(n):
        rows = "".join(f"{p.name},{p.hkid}\n" for p in PEOPLE[i % 20:i % 20 + 20])
        (d / f"leak{i:03d}.csv").write_text("name,hkid\n" + rows)
    return [str(p) for p in sorted(d.iterdir())]


@pytest.fixture
def http_server_dir(tmp_path: Path):
    """Python's own http.server on loopback serving a fresh directory."""
    import functools
    import http.server
    import threading

    root = tmp_path / "site"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def test_scan_index_on_a_full_disk_is_one_line_and_the_store_stays_intact(
        ws: Path, tiny_fs: Path) -> None:
    cfg = write_config(ws, tiny_fs / "state")
    first = cli("scan", "--index", "--config", str(cfg), "leak.txt", cwd=ws)
    assert first.returncode == 1, first.stderr  # a hit, recorded
    filler = fill(tiny_fs, 96 * 1024)
    files = many_leaks(ws / "more", 120)
    r = cli("scan", "--index", "--json", "--config", str(cfg), *files, cwd=ws)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    one_line(r, str(tiny_fs / "state" / "state.db"), "disk full")
    filler.unlink()
    db = tiny_fs / "state" / "state.db"
    assert integrity(db) == "ok"
    hits = cli("hits", "--json", "--config", str(cfg), cwd=ws)
    assert hits.returncode == 0, hits.stderr
    urls = [json.loads(line)["url"] for line in hits.stdout.splitlines()]
    assert "leak.txt" in urls  # what was recorded before the disk filled is still there


def test_a_crawl_on_a_full_disk_records_its_run_as_an_error(ws: Path, tiny_fs: Path,
                                                            http_server_dir) -> None:
    root, url = http_server_dir
    many_leaks(root / "files", 150)
    src = (f'[[sources]]\nname = "dir"\nkind = "directory"\nurl = "{url}files/"\n'
           'allow_private = true\nobey_robots = false\ndelay = 0\nretry_max = 0\n')
    cfg = write_config(ws, tiny_fs / "state", src)
    Store(tiny_fs / "state" / "state.db").close()  # the store exists, then the disk fills
    filler = fill(tiny_fs, 96 * 1024)
    r = cli("crawl", "dir", "--json", "--config", str(cfg), cwd=ws)
    assert r.returncode != 0, r.stdout[-2000:] + r.stderr[-3000:]
    runs = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    filler.unlink()
    db = tiny_fs / "state" / "state.db"
    assert integrity(db) == "ok"
    conn = sqlite3.connect(db)
    recorded = conn.execute("SELECT outcome, error FROM source_runs").fetchall()
    conn.close()
    # the store keeps a little space in reserve for this: the run record fits
    assert recorded and recorded[-1][0] == "error", (recorded, r.stderr[-3000:])
    assert "disk full" in recorded[-1][1]
    assert runs and runs[0]["outcome"] == "error" and r.returncode == 1, r.stdout
    assert "Traceback" not in r.stdout + r.stderr, r.stderr[-3000:]
