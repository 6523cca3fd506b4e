"""`leaksentry scan` as a user runs it (real subprocesses), and the no-plaintext rule:
identifiers planted in a register and in leaked files never appear in anything the
CLI prints or writes, in any written form."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import xlsxwriter

from leaksentry import synth
from pipelines.match import build_fingerprints, generate_key, read_key

N = 150
PATIENTS = list(synth.patients(N, seed=21))
SCAN_KEYS = ["path", "sha256", "status", "error", "severity", "matched_records", "record_refs",
             "matches", "unmatched_valid", "parts", "skipped", "partial", "exposed_fields",
             "exposed_categories"]


def run(*args: str, stdin: bytes | None = None, env: dict | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "leaksentry", *args], capture_output=True,
                          input=stdin, timeout=180, env=env, cwd=cwd)


def hkid_forms(c: str) -> list[str]:
    body, check = c[:-1], c[-1]
    fw = "".join(chr(ord(x) + 0xFEE0) for x in f"{body}({check})")
    return [c, c.lower(), f"{body}({check})", f"{body} {check}", f"{body} ({check})", fw,
            f"{body}（{check}）"]


def hn_forms(c: str) -> list[str]:
    return [c, c.lower(), f"{c[:-1]}({c[-1]})", f"{c[:2]} {c[2:-1]} ({c[-1]})"]


def every_form(p: synth.Patient) -> list[str]:
    """Any written form, plus the digit runs alone (a partial leak is a leak)."""
    return [*hkid_forms(p.hkid), *hn_forms(p.hn), p.hkid[-7:-1], p.hn[2:10]]


def write_register(path: Path, patients: list[synth.Patient]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["ref", "name", "hkid", "hn"])
        for p in patients:
            w.writerow([p.ref, p.name, p.hkid, p.hn])


def write_leaks(d: Path, planted: list[synth.Patient], decoy: list[str]) -> None:
    """A paste (English/Chinese, every form), a CSV export and an XLSX export."""
    lines = []
    for i, p in enumerate(planted[:8]):
        f = hkid_forms(p.hkid)[i % 7]
        lines.append(f"病人 {p.name_zh} 香港身份證：{f}，住院號 {hn_forms(p.hn)[i % 4]}。")
    lines += [f"unregistered id {h} seen" for h in decoy]
    (d / "paste.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with open(d / "export.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["name", "gender", "hkid", "hn", "procedure"])
        for p in planted[8:14]:
            w.writerow([p.name, p.gender, hkid_forms(p.hkid)[2], p.hn, p.procedure])
    wb = xlsxwriter.Workbook(str(d / "export.xlsx"))
    ws = wb.add_worksheet("Sheet1")
    ws.write_row(0, 0, ["name", "hkid", "hn"])
    for i, p in enumerate(planted[14:20], start=1):
        ws.write_row(i, 0, [p.name, p.hkid, p.hn])
    wb.close()


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Key, fingerprints (built in-process: fast) and a few leak files."""
    d = tmp_path_factory.mktemp("scan")
    generate_key(d / "key")
    write_register(d / "register.csv", PATIENTS)
    build_fingerprints(d / "register.csv", read_key(d / "key"), d / "fp")
    (d / "leaks").mkdir()
    write_leaks(d / "leaks", PATIENTS[:20], [])
    (d / "clean.txt").write_text("nothing to see here 2024-01-01 tel 91234567\n")
    return d


def json_lines(out: bytes) -> list[dict]:
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


def one_line_error(r: subprocess.CompletedProcess, *needles: str) -> None:
    err = r.stderr.decode()
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], err


def test_json_lines_and_exit_1(ws: Path) -> None:
    r = run("scan", "--key", str(ws / "key"), "--fingerprints", str(ws / "fp"), "--json",
            str(ws / "leaks"), str(ws / "clean.txt"))
    assert r.returncode == 1, r.stderr
    docs = {Path(d["path"]).name: d for d in json_lines(r.stdout)}
    assert set(docs) == {"paste.txt", "export.csv", "export.xlsx", "clean.txt"}
    for d in docs.values():
        assert list(d) == SCAN_KEYS
        assert d["status"] == "ok" and d["error"] is None
    assert docs["paste.txt"]["record_refs"] == [str(i) for i in range(1, 9)]
    assert docs["export.csv"]["record_refs"] == [str(i) for i in range(9, 15)]
    assert docs["export.xlsx"]["record_refs"] == [str(i) for i in range(15, 21)]
    assert docs["clean.txt"]["matched_records"] == 0 and docs["clean.txt"]["severity"] == "none"
    m = docs["export.csv"]["matches"][0]
    assert list(m) == ["kind", "masked", "record_ref", "count", "where"]
    assert m["where"].endswith("!C2") and m["masked"].endswith(")")
    assert docs["export.xlsx"]["matches"][0]["where"].endswith("!B2")


def test_nothing_matched_is_exit_0_with_a_table(ws: Path) -> None:
    r = run("scan", "--key", str(ws / "key"), "--fingerprints", str(ws / "fp"),
            str(ws / "clean.txt"))
    assert r.returncode == 0, r.stderr
    assert b"clean.txt" in r.stdout and b"none" in r.stdout


def test_stdin_and_config(ws: Path) -> None:
    cfg = ws / "leaksentry.toml"
    cfg.write_text(f'[matching]\nkey = "{ws / "key"}"\nfingerprints = "{ws / "fp"}"\n')
    r = run("scan", "--config", str(cfg), "--json", "-",
            stdin=f"leak {PATIENTS[41].hkid} end".encode())
    assert r.returncode == 1, r.stderr
    (doc,) = json_lines(r.stdout)
    assert doc["path"] == "-" and doc["record_refs"] == ["42"]


def test_binary_junk_on_stdin(ws: Path) -> None:
    junk = bytes(range(256)) * 40 + os.urandom(4096)
    r = run("scan", "--key", str(ws / "key"), "--fingerprints", str(ws / "fp"), "--json", "-",
            stdin=junk)
    assert r.returncode in (0, 2), r.stderr
    assert b"Traceback" not in r.stderr
    (doc,) = json_lines(r.stdout)
    assert doc["matched_records"] == 0
    if r.returncode == 2:  # the extractor refused it: a recorded status, one line
        assert doc["status"] != "ok" and doc["error"]
        one_line_error(r, "-")


def test_input_errors_exit_2(ws: Path) -> None:
    base = ["scan", "--key", str(ws / "key"), "--fingerprints", str(ws / "fp")]
    r = run(*base, "-", stdin=b"")
    assert r.returncode == 2
    one_line_error(r, "stdin", "empty")
    r = run(*base, str(ws / "missing.txt"))
    assert r.returncode == 2
    one_line_error(r, str(ws / "missing.txt"))
    r = run("scan", "--fingerprints", str(ws / "fp"), str(ws / "clean.txt"),
            env=os.environ | {"LEAKSENTRY_CONFIG": str(ws / "none.toml")})
    assert r.returncode == 2 and b"Traceback" not in r.stderr


def test_wrong_key_and_damaged_fingerprints(ws: Path, tmp_path: Path) -> None:
    generate_key(tmp_path / "other")
    r = run("scan", "--key", str(tmp_path / "other"), "--fingerprints", str(ws / "fp"),
            str(ws / "clean.txt"))
    assert r.returncode == 2
    one_line_error(r, str(ws / "fp"), "another key")
    data = (ws / "fp").read_bytes()
    tampered = bytearray(data)
    tampered[300] ^= 0xFF
    (tmp_path / "tampered").write_bytes(bytes(tampered))
    (tmp_path / "truncated").write_bytes(data[: len(data) // 2])
    for name, needle in (("tampered", "integrity"), ("truncated", "truncated")):
        r = run("scan", "--key", str(ws / "key"), "--fingerprints", str(tmp_path / name),
                str(ws / "clean.txt"))
        assert r.returncode == 2
        one_line_error(r, str(tmp_path / name), needle)
    # the check runs while the first document is scanned: nothing is said of any document
    # (a leak, a missing file) before it failed
    r = run("scan", "--key", str(ws / "key"), "--fingerprints", str(tmp_path / "tampered"),
            "--json", str(ws / "leaks"), str(ws / "missing.txt"))
    assert r.returncode == 2 and r.stdout == b""
    one_line_error(r, str(tmp_path / "tampered"), "integrity")
    r = run("scan", "--key", str(ws / "key"), "--fingerprints", str(tmp_path / "tampered"),
            str(ws / "missing.txt"))
    assert r.returncode == 2 and r.stdout == b""
    one_line_error(r, str(tmp_path / "tampered"), "integrity")
    (tmp_path / "empty").mkdir()  # nothing to scan: the file is still checked
    r = run("scan", "--key", str(ws / "key"), "--fingerprints", str(tmp_path / "tampered"),
            str(tmp_path / "empty"))
    assert r.returncode == 2
    one_line_error(r, str(tmp_path / "tampered"), "integrity")


def test_index_records_hits_for_the_hits_command(ws: Path, tmp_path: Path) -> None:
    """`scan --index` goes through the crawler's flow: `leaksentry hits` then lists them."""
    env = os.environ | {"LEAKSENTRY_HOME": str(tmp_path / "state")}
    base = ["scan", "--key", str(ws / "key"), "--fingerprints", str(ws / "fp")]
    r = run(*base, "--index", "--json", str(ws / "leaks"), str(ws / "clean.txt"), env=env)
    assert r.returncode == 1, r.stderr
    assert b"recorded 4 document(s)" in r.stderr
    hits = json_lines(run("hits", "--json", env=env).stdout)
    by_name = {Path(h["url"]).name: h for h in hits}
    assert set(by_name) == {"paste.txt", "export.csv", "export.xlsx"}
    assert by_name["export.csv"]["record_refs"] == [str(i) for i in range(9, 15)]
    # indexing the same files again adds no hit (same sha256 and path)
    run(*base, "--index", str(ws / "leaks"), env=env)
    assert len(json_lines(run("hits", "--json", env=env).stdout)) == 3


def test_skipped_content_is_exit_2_unless_matched(ws: Path, tmp_path: Path) -> None:
    """A zip with an unreadable member is not clean: exit 2 when nothing matched; with a
    leaking member beside it, the hit is reported, partial, and lists the skipped one."""
    import zipfile

    base = ["scan", "--key", str(ws / "key"), "--fingerprints", str(ws / "fp"), "--json"]
    with zipfile.ZipFile(tmp_path / "quiet.zip", "w") as zf:
        zf.writestr("tool.exe", b"MZ" + b"\x90" * 300)
        zf.writestr("notes.txt", "nothing here\n")
    r = run(*base, str(tmp_path / "quiet.zip"))
    assert r.returncode == 2, r.stderr
    (doc,) = json_lines(r.stdout)
    assert doc["status"] == "ok" and doc["partial"] is False
    assert doc["skipped"] == [{"where": "quiet.zip/tool.exe", "status": "unsupported",
                               "error": "quiet.zip/tool.exe: unsupported type exe"}]
    one_line_error(r, "quiet.zip", "skipped")
    with zipfile.ZipFile(tmp_path / "leak.zip", "w") as zf:
        zf.writestr("tool.exe", b"MZ" + b"\x90" * 300)
        zf.write(ws / "leaks" / "export.csv", "export.csv")
    r = run(*base, str(tmp_path / "leak.zip"))
    assert r.returncode == 1, r.stderr
    (doc,) = json_lines(r.stdout)
    assert doc["record_refs"] == [str(i) for i in range(9, 15)]
    assert doc["partial"] is True and len(doc["skipped"]) == 1


def test_help_documents_exit_codes() -> None:
    r = run("scan", "--help")
    assert r.returncode == 0
    out = b" ".join(r.stdout.split()).decode()
    assert "0 nothing matched" in out and "1 something matched" in out and "2 usage" in out


@pytest.mark.slow
def test_no_plaintext_anywhere(tmp_path: Path) -> None:
    """Build and scan with every output option; search every output for any form."""
    planted = PATIENTS[:20]
    decoy = [synth.hkid(__import__("random").Random(s)) for s in range(5)]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    write_register(inputs / "register.csv", PATIENTS)
    write_leaks(inputs, planted, decoy)
    out = tmp_path / "out"
    out.mkdir()
    env = os.environ | {"LEAKSENTRY_HOME": str(out / "state"), "HOME": str(out / "home")}
    key, fp = str(out / "key"), str(out / "fp")
    results = [
        run("keygen", "--out", key, env=env, cwd=out),
        run("fingerprints", "build", "--key", key, "--out", fp, "--ref-column", "ref",
            str(inputs / "register.csv"), env=env, cwd=out),
        run("fingerprints", "build", "--key", key, "--out", fp + "2", "--json",
            "--hkid-column", "hkid", "--hn-column", "hn", str(inputs / "register.csv"),
            env=env, cwd=out),
        run("fingerprints", "info", fp, env=env, cwd=out),
        run("fingerprints", "info", "--json", fp, env=env, cwd=out),
        run("scan", "--key", key, "--fingerprints", fp, str(inputs), env=env, cwd=out),
        run("scan", "--key", key, "--fingerprints", fp, "--json", str(inputs), env=env, cwd=out),
        run("scan", "--key", key, "--fingerprints", fp, "--json", "-", env=env, cwd=out,
            stdin=(inputs / "paste.txt").read_bytes()),
        run("scan", "--key", key, "--fingerprints", fp, "-", env=env, cwd=out,
            stdin=(inputs / "paste.txt").read_bytes()),
        run("scan", "--key", key, "--fingerprints", fp, "--index", str(inputs), env=env,
            cwd=out),
        run("hits", "--json", env=env, cwd=out),
        run("hits", env=env, cwd=out),
    ]
    assert [r.returncode for r in results] == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0], [
        r.stderr for r in results]
    # the scans did find them (so the search below is meaningful)
    docs = json_lines(results[6].stdout)
    assert sum(d["matched_records"] for d in docs) >= 20
    assert max(d["unmatched_valid"]["hkid"] for d in docs) == 5
    assert (out / "state" / "state.db").exists()  # --index wrote the store searched below
    assert len(json_lines(results[10].stdout)) >= 3
    blobs = [r.stdout for r in results] + [r.stderr for r in results]
    written = [p for p in out.rglob("*") if p.is_file()]
    assert written  # key, fingerprint files
    blobs += [p.read_bytes() for p in written]
    for p in written:  # any SQLite store, read back as text too
        if p.read_bytes()[:16] == b"SQLite format 3\x00":
            con = sqlite3.connect(p)
            for (table,) in con.execute("select name from sqlite_master where type='table'"):
                blobs.append(repr(con.execute(f'select * from "{table}"').fetchall()).encode())
            con.close()
    haystack = b"\n".join(blobs)
    needles = {f for p in [*planted, *PATIENTS[20:]] for f in every_form(p)}
    needles |= {f for h in decoy for f in hkid_forms(h)}
    planted_text = (inputs / "paste.txt").read_bytes()  # the search itself works
    assert sum(n.encode() in planted_text for n in needles) >= 16
    for needle in needles:
        for enc in ("utf-8", "utf-16-le"):
            assert needle.encode(enc) not in haystack, "an identifier was written"


def test_version_names_the_scanner_path() -> None:
    """An operator can tell from --version whether the C path was built (it halves the
    scan time); `make test` requires it, so here it must be there."""
    out = run("--version")
    assert out.returncode == 0
    line = out.stdout.decode().strip()
    assert line.startswith("leaksentry ") and "(scanner: " in line
    if os.environ.get("LEAKSENTRY_REQUIRE_SPEEDUPS") == "1":
        assert line.endswith("hyperscan + C speedups)")
