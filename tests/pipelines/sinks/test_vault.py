"""The evidence vault through the real CLI: age encryption to public keys only (pyrage,
and Debian's `age` binary decrypting what pyrage wrote), signed sidecars, tamper
checks, crash safety under SIGKILL, retention, and the no-private-key rule."""

from __future__ import annotations

import json
import os
import pty
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyrage
import pytest
from fixtures_register import fingerprint_people

from leaksentry import synth
from leaksentry.config import load_config
from leaksentry.config.toml import dumps
from leaksentry.store import Store
from pipelines.match import read_key
from pipelines.sinks.vault import Vault, file_names

PATIENTS = list(synth.patients(60, seed=5))


def run(*args: str, env: dict | None = None, **kw: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "leaksentry", *args], capture_output=True,
                          timeout=180, env=env, **kw)  # type: ignore[call-overload]


def leak_csv(patients: list[synth.Patient]) -> bytes:
    lines = ["name,gender,hkid,hn,procedure"]
    lines += [f"{p.name},{p.gender},{p.hkid},{p.hn},{p.procedure}" for p in patients]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    fingerprint_people(tmp_path, PATIENTS, ("ref", "name", "hkid", "hn"))
    ident = pyrage.x25519.Identity.generate()
    (tmp_path / "identity.txt").write_text(str(ident) + "\n")
    os.chmod(tmp_path / "identity.txt", 0o600)
    (tmp_path / "recipient.txt").write_text(str(ident.to_public()) + "\n")
    write_config(tmp_path, [str(ident.to_public())])
    (tmp_path / "leak.csv").write_bytes(leak_csv(PATIENTS[:30]))  # critical
    (tmp_path / "small.txt").write_text(f"one id {PATIENTS[40].hkid} here\n")  # low
    return tmp_path


def write_config(d: Path, recipients: list[str], **evidence: object) -> Path:
    cfg = {"state": {"dir": str(d / "state")},
           "matching": {"key": str(d / "key"), "fingerprints": str(d / "fp")},
           "evidence": {"recipients": recipients, **evidence}}
    (d / "cfg.toml").write_text(dumps(cfg))
    return d / "cfg.toml"


def planted_strings() -> list[str]:
    return [s for p in PATIENTS[:30] for s in (p.hkid, p.hn, p.name)]


def test_round_trip_with_pyrage_and_debian_age(ws: Path) -> None:
    r = run("scan", "--index", "--config", str(ws / "cfg.toml"), str(ws / "leak.csv"),
            str(ws / "small.txt"))
    assert r.returncode == 1, r.stderr
    vault = ws / "state" / "evidence"
    # only the hit at or above min_severity (high) is kept, named from its hit id
    assert sorted(p.name for p in vault.iterdir()) == sorted(file_names(1))
    for p in vault.iterdir():
        assert p.stat().st_mode & 0o777 == 0o600
    meta = json.loads((vault / file_names(1)[1]).read_text())
    assert meta["size"] == len(leak_csv(PATIENTS[:30]))
    assert meta["recipients"][0].startswith("age:")
    assert "leak.csv" in meta["url"]

    listed = run("evidence", "list", "--json", "--config", str(ws / "cfg.toml"))
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(x) for x in listed.stdout.decode().splitlines()]
    assert [(e["hit_id"], e["size"]) for e in rows] == [(1, meta["size"])]

    out = ws / "opened.csv"
    r = run("evidence", "open", "1", "--identity", str(ws / "identity.txt"), "--out", str(out),
            "--config", str(ws / "cfg.toml"))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == (ws / "leak.csv").read_bytes()
    assert out.stat().st_mode & 0o777 == 0o600
    # Debian's age reads what pyrage wrote
    age = subprocess.run(["age", "-d", "-i", str(ws / "identity.txt"),
                          str(vault / file_names(1)[0])], capture_output=True, timeout=60)
    assert age.returncode == 0, age.stderr
    assert age.stdout == (ws / "leak.csv").read_bytes()
    # who opened what is recorded
    with sqlite3.connect(ws / "state" / "state.db") as db:
        audit = db.execute("SELECT hit_id, action FROM evidence_audit").fetchall()
    assert audit == [(1, "open")]
    # nothing the CLI printed holds an identifier or a name
    printed = (listed.stdout + listed.stderr + r.stdout + r.stderr).decode()
    assert not [s for s in planted_strings() if s in printed]


def test_ssh_recipient_and_bundle_export(ws: Path) -> None:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen (openssh-client) is not installed")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ws / "ssh")],
                   check=True, timeout=30)
    cfg = write_config(ws, [(ws / "ssh.pub").read_text().strip()])
    assert run("scan", "--index", "--config", str(cfg), str(ws / "leak.csv")).returncode == 1
    bundle = ws / "bundle.zip"
    r = run("evidence", "export", "1", "--out", str(bundle), "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert bundle.stat().st_mode & 0o777 == 0o600
    out = ws / "from-bundle.csv"
    r = run("evidence", "open", str(bundle), "--identity", str(ws / "ssh"), "--out", str(out),
            "--key", str(ws / "key"), "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == (ws / "leak.csv").read_bytes()


def test_tampering_is_refused(ws: Path) -> None:
    assert run("scan", "--index", "--config", str(ws / "cfg.toml"),
               str(ws / "leak.csv")).returncode == 1
    vault = ws / "state" / "evidence"
    age_name, meta_name = file_names(1)
    original_meta = (vault / meta_name).read_bytes()
    meta = json.loads(original_meta)
    meta["source"] = "somewhere-else"
    (vault / meta_name).write_text(json.dumps(meta))
    r = run("evidence", "open", "1", "--identity", str(ws / "identity.txt"), "--out",
            str(ws / "o1"), "--config", str(ws / "cfg.toml"))
    assert r.returncode == 2
    assert "signature does not verify" in r.stderr.decode()
    assert not (ws / "o1").exists()

    (vault / meta_name).write_bytes(original_meta)
    data = bytearray((vault / age_name).read_bytes())
    data[-10] ^= 0x01
    (vault / age_name).write_bytes(bytes(data))
    r = run("evidence", "open", "1", "--identity", str(ws / "identity.txt"), "--out",
            str(ws / "o2"), "--config", str(ws / "cfg.toml"))
    assert r.returncode == 2
    assert "ciphertext does not match" in r.stderr.decode()
    assert not (ws / "o2").exists()
    assert len(r.stderr.decode().strip().splitlines()) == 1


def test_open_refuses_a_terminal(ws: Path) -> None:
    assert run("scan", "--index", "--config", str(ws / "cfg.toml"),
               str(ws / "leak.csv")).returncode == 1
    controller, tty = pty.openpty()
    try:
        r = subprocess.run(
            [sys.executable, "-m", "leaksentry", "evidence", "open", "1", "--identity",
             str(ws / "identity.txt"), "--out", "-", "--config", str(ws / "cfg.toml")],
            stdout=tty, stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(tty)
        os.close(controller)
    assert r.returncode == 2
    assert "terminal" in r.stderr.decode()


def test_private_key_anywhere_in_the_config_is_refused(ws: Path) -> None:
    # an identity file given as a recipient
    cfg = write_config(ws, [str(ws / "identity.txt")])
    r = run("config", "check", "--config", str(cfg))
    assert r.returncode == 2
    err = r.stderr.decode().strip().splitlines()
    assert len(err) == 1 and "evidence.recipients" in err[0] and "private key" in err[0]
    # a pasted identity string in any field
    secret = (ws / "identity.txt").read_text().strip()
    cfg.write_text(dumps({"state": {"dir": str(ws / "state")},
                          "alerts": {"channels": [{"name": "hook", "type": "webhook",
                                                   "url": f"https://x.example/{secret}"}]}}))
    r = run("config", "check", "--config", str(cfg))
    assert r.returncode == 2
    err = r.stderr.decode().strip().splitlines()
    assert len(err) == 1 and "alerts.channels[0].url" in err[0], err
    assert secret not in r.stderr.decode()
    # and the daemon does not start with it
    r = run("run", "--config", str(cfg))
    assert r.returncode == 2
    assert "private key" in r.stderr.decode()


def test_retention_deletes_exactly_the_expired(ws: Path) -> None:
    cfg = load_config(write_config(ws, [(ws / "recipient.txt").read_text().strip()],
                                   retention="30d"))
    vault = Vault.from_settings(cfg)
    assert vault is not None
    store = Store(cfg.state.db)
    from pipelines.flow import record_finding
    from pipelines.match import Matcher
    from pipelines.model import Document
    from pipelines.process import scan_inline

    matcher = Matcher.load(ws / "key", ws / "fp", cfg.matching)
    for i in range(4):
        content = leak_csv(PATIENTS[i * 10:(i + 1) * 10])
        doc = Document(url=f"https://files.example/export-{i}.csv", source="t", content=content,
                       filename=f"export-{i}.csv")
        from pipelines.model import Finding

        finding = Finding.of(doc, scan_inline(content, doc.filename, matcher, cfg.extract))
        assert record_finding(store, finding, cfg, vault=vault,
                              content=lambda data=content: data) is not None
    old = (datetime.now(UTC) - timedelta(days=31)).isoformat()
    with store.transaction() as tx:
        tx.execute("UPDATE evidence SET stored_at = ? WHERE hit_id IN (1, 3)", (old,))
    assert sorted(p.name for p in vault.dir.iterdir()) == sorted(
        n for h in (1, 2, 3, 4) for n in file_names(h))
    with store.transaction() as tx:
        assert vault.purge(tx) == [1, 3]
    assert sorted(p.name for p in vault.dir.iterdir()) == sorted(
        n for h in (2, 4) for n in file_names(h))
    assert [r[0] for r in store.conn.execute("SELECT hit_id FROM evidence")] == [2, 4]
    store.close()


WRITER = r"""
import sys
from pathlib import Path
from leaksentry.config import load_config
from leaksentry.store import Store
from pipelines.flow import record_finding
from pipelines.model import Document, Finding, ScanResult
from pipelines.sinks.vault import Vault

cfg = load_config(sys.argv[1])
vault = Vault.from_settings(cfg)
store = Store(cfg.state.db)
for i in range(10_000):
    content = bytes([i % 251]) * (4 << 20) + str(i).encode()
    doc = Document(url=f"https://files.example/dump-{i}.bin", source="t", content=content)
    res = ScanResult(severity="critical", matched_records=1, record_refs=[str(i)])
    record_finding(store, Finding.of(doc, res), cfg, vault=vault, content=lambda: content)
    print(i, flush=True)
"""


def test_sigkill_during_evidence_writes_leaves_no_half_state(ws: Path) -> None:
    """A writer keeps recording critical hits with 4 MB documents; it is SIGKILLed while
    a temp file of an evidence write exists. After a restart (the sweep the daemon's
    retention job runs), no temp file is left and every hit has complete evidence."""
    cfg_path = ws / "cfg.toml"
    vault_dir = ws / "state" / "evidence"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(cfg_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        for _ in range(3):  # a few hits committed first
            assert proc.stdout.readline(), proc.stderr.read() if proc.stderr else ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if vault_dir.is_dir() and any(".tmp-" in p.name for p in vault_dir.iterdir()):
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    cfg = load_config(cfg_path)
    vault = Vault.from_settings(cfg)
    assert vault is not None
    store = Store(cfg.state.db)
    swept = vault.sweep(store.conn)
    names = {p.name for p in vault_dir.iterdir()}
    assert not [n for n in names if ".tmp-" in n]
    assert swept.temp_files >= 1
    hits = [r[0] for r in store.conn.execute("SELECT id FROM hits ORDER BY id")]
    assert len(hits) >= 3
    key = read_key(ws / "key")
    from pipelines.sinks.vault import load_sealed

    for hit_id in hits:
        row = store.conn.execute("SELECT file FROM evidence WHERE hit_id = ?",
                                 (hit_id,)).fetchone()
        assert row is not None, f"hit {hit_id} has no evidence row"
        age_name, meta_name = file_names(hit_id)
        load_sealed(vault_dir / age_name, (vault_dir / meta_name).read_bytes(), key)
    # renamed files without a committed row (killed between rename and commit) go once
    # their grace period is over
    for n in names - {x for h in hits for x in file_names(h)}:
        past = time.time() - 3600
        os.utime(vault_dir / n, (past, past))
    vault.sweep(store.conn)
    assert {p.name for p in vault_dir.iterdir()} == {x for h in hits for x in file_names(h)}
    store.close()


def test_es_document_and_alert_say_evidence_was_kept(ws: Path, osmem) -> None:  # type: ignore[no-untyped-def]
    cfg = {"state": {"dir": str(ws / "state")},
           "matching": {"key": str(ws / "key"), "fingerprints": str(ws / "fp")},
           "evidence": {"recipients": [(ws / "recipient.txt").read_text().strip()]},
           "elasticsearch": {"url": osmem.url, "backend": "opensearch"},
           "alerts": {"channels": [{"name": "hook", "type": "webhook",
                                    "url": "http://127.0.0.1:9/unused"}]}}
    (ws / "cfg.toml").write_text(dumps(cfg))
    r = run("scan", "--index", "--config", str(ws / "cfg.toml"), str(ws / "leak.csv"))
    assert r.returncode == 1, r.stderr
    found = osmem.request("POST", "/leaksentry-hits/_search", {"query": {"match_all": {}}})
    docs = [h["_source"] for h in found["hits"]["hits"]]
    assert len(docs) == 1
    ev = docs[0]["leaksentry"]["evidence"]
    assert ev["stored"] is True and ev["size"] == len(leak_csv(PATIENTS[:30]))
    with sqlite3.connect(ws / "state" / "state.db") as db:
        payloads = [json.loads(p) for (p,) in db.execute("SELECT payload FROM alerts")]
    assert payloads and all(p["evidence"]["stored"] for p in payloads)


def test_the_daemons_retention_job_purges_and_sweeps(ws: Path) -> None:
    from scheduler import jobs
    from scheduler.crawls import RunningCrawls

    cfg_path = write_config(ws, [(ws / "recipient.txt").read_text().strip()], retention="7d")
    assert run("scan", "--index", "--config", str(cfg_path), str(ws / "leak.csv")).returncode == 1
    cfg = load_config(cfg_path)
    vault_dir = ws / "state" / "evidence"
    (vault_dir / "hit-00000009.age.tmp-999999999-1").write_bytes(b"half")  # a dead writer's
    store = Store(cfg.state.db)
    with store.transaction() as tx:
        tx.execute("UPDATE evidence SET stored_at = ?",
                   ((datetime.now(UTC) - timedelta(days=8)).isoformat(),))
    jobs.install(jobs.Runtime(settings=cfg, config_path=cfg_path, store=store, metrics=None,
                              running=RunningCrawls(ws / "crawls")))
    try:
        jobs.periodic_job(jobs.RETENTION)
    finally:
        jobs.install(None)
    assert list(vault_dir.iterdir()) == []
    assert store.conn.execute("SELECT count(*) FROM evidence").fetchone()[0] == 0
    store.close()
