"""`leaksentry notify` as a user runs it on the trusted side: hits joined to the register,
one row per affected person, the join checked against the fingerprints, and personal
data only in the report file."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from python_calamine import CalamineWorkbook

from leaksentry import synth
from leaksentry.config.toml import dumps
from pipelines.match import build_fingerprints, generate_key, read_key

PATIENTS = list(synth.patients(200, seed=33))
BY_REF = {p.ref: p for p in PATIENTS}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "leaksentry", *args], capture_output=True,
                          timeout=180)


def write_register(path: Path, patients: list[synth.Patient]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["PatientRef", "Patient Name", "Gender", "HKID", "Hospital No"])
        for p in patients:
            w.writerow([p.ref, p.name, p.gender, p.hkid, p.hn])


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("notify")
    generate_key(d / "key")
    write_register(d / "register.csv", PATIENTS)
    build_fingerprints(d / "register.csv", read_key(d / "key"), d / "fp",
                       ref_column="PatientRef", hkid_column="HKID", hn_column="Hospital No")
    (d / "cfg.toml").write_text(dumps({
        "state": {"dir": str(d / "state")},
        "matching": {"key": str(d / "key"), "fingerprints": str(d / "fp")}}))
    # two leaks: a CSV export of 40 patients (HKID + HN), a paste naming 10 of them again
    # and 5 others by HKID only
    with open(d / "export.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "gender", "hkid", "hn", "procedure"])
        for p in PATIENTS[:40]:
            w.writerow([p.name, p.gender, p.hkid, p.hn, p.procedure])
    (d / "paste.txt").write_text("".join(f"patient id {p.hkid}\n"
                                         for p in PATIENTS[30:40] + PATIENTS[100:105]))
    r = run("scan", "--index", "--config", str(d / "cfg.toml"), str(d / "export.csv"),
            str(d / "paste.txt"))
    assert r.returncode == 1, r.stderr
    hits = run("hits", "--json", "--config", str(d / "cfg.toml"))
    assert hits.returncode == 0, hits.stderr
    (d / "hits.jsonl").write_bytes(hits.stdout)
    return d


def identifiers() -> list[str]:
    return [s for p in PATIENTS for s in (p.hkid, p.hn, p.name)]


def test_one_row_per_person_with_each_leak_and_what_was_exposed(ws: Path) -> None:
    out = ws / "notify.xlsx"
    r = run("notify", "--register", str(ws / "register.csv"), "--ref-column", "PatientRef",
            "--include", "Patient Name,Gender", "--hits", str(ws / "hits.jsonl"),
            "--key", str(ws / "key"), "--fingerprints", str(ws / "fp"), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    wb = CalamineWorkbook.from_path(str(out))
    rows = wb.get_sheet_by_name("Affected people").to_python()
    header, body = rows[0], rows[1:]
    assert header[:3] == ["Register ref", "Patient Name", "Gender"]
    col = {name: i for i, name in enumerate(header)}
    refs = [str(row[0]) for row in body]
    expected = {p.ref for p in PATIENTS[:40] + PATIENTS[100:105]}
    assert sorted(refs) == sorted(expected) and len(refs) == len(set(refs))
    for row in body:
        p = BY_REF[str(row[0])]
        assert row[col["Patient Name"]] == p.name and row[col["Gender"]] == p.gender
        leaks = int(row[col["Leaks"]])
        details = row[col["Leak details (source, URL, first seen, hit)"]]
        exposed = row[col["Exposed data"]]
        if p in PATIENTS[30:40]:
            assert leaks == 2 and "export.csv" in details and "paste.txt" in details
            assert "identifier (hkid)" in exposed and "identifier (hn)" in exposed
        elif p in PATIENTS[:30]:
            assert leaks == 1 and "export.csv" in details
            assert "identifier (hkid)" in exposed and "identifier (hn)" in exposed
        else:
            assert leaks == 1 and "paste.txt" in details
            assert exposed == "identifier (hkid)"
    summary = {(g, v): n for g, v, n in wb.get_sheet_by_name("Summary").to_python()[1:]}
    assert summary[("total", "affected people")] == 45
    assert summary[("total", "leaks")] == 2
    assert summary[("source", "scan")] == 45
    # counts only on the terminal, and it says where the personal data went
    printed = (r.stdout + r.stderr).decode()
    assert "45 affected people" in printed and "only in that file" in printed
    assert not [s for s in identifiers() if s in printed]


def test_from_the_local_store_as_csv(ws: Path) -> None:
    out = ws / "notify.csv"
    r = run("notify", "--register", str(ws / "register.csv"), "--ref-column", "PatientRef",
            "--config", str(ws / "cfg.toml"), "--out", str(out))
    assert r.returncode == 0, r.stderr
    with open(out, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert len(rows) == 46
    assert (ws / "notify.summary.csv").stat().st_mode & 0o777 == 0o600
    assert "NOT checked" in r.stderr.decode()


def test_wrong_register_or_key_is_refused(ws: Path) -> None:
    # same refs, identifiers shuffled between people: the join would notify wrong people
    shuffled = [dataclasses.replace(p, hkid=q.hkid, hn=q.hn)
                for p, q in zip(PATIENTS, PATIENTS[1:] + PATIENTS[:1], strict=True)]
    write_register(ws / "wrong.csv", shuffled)
    r = run("notify", "--register", str(ws / "wrong.csv"), "--ref-column", "PatientRef",
            "--hits", str(ws / "hits.jsonl"), "--key", str(ws / "key"),
            "--fingerprints", str(ws / "fp"), "--out", str(ws / "w.xlsx"))
    assert r.returncode == 2
    err = r.stderr.decode().strip().splitlines()
    assert len(err) == 1 and "refusing" in err[0] and "wrong.csv" in err[0]
    assert not (ws / "w.xlsx").exists()
    generate_key(ws / "otherkey")
    r = run("notify", "--register", str(ws / "register.csv"), "--ref-column", "PatientRef",
            "--hits", str(ws / "hits.jsonl"), "--key", str(ws / "otherkey"),
            "--fingerprints", str(ws / "fp"), "--out", str(ws / "k.xlsx"))
    assert r.returncode == 2 and "another key" in r.stderr.decode()
    # a register without the affected refs
    write_register(ws / "short.csv", PATIENTS[:10])
    r = run("notify", "--register", str(ws / "short.csv"), "--ref-column", "PatientRef",
            "--hits", str(ws / "hits.jsonl"), "--out", str(ws / "s.xlsx"))
    assert r.returncode == 2 and "not in this register" in r.stderr.decode()
    printed = b"".join(x for x in (r.stdout, r.stderr)).decode()
    assert not [s for s in identifiers() if s in printed]


def test_hits_file_that_is_not_hits_json(ws: Path) -> None:
    (ws / "junk.jsonl").write_text(json.dumps({"x": 1}) + "\n")
    r = run("notify", "--register", str(ws / "register.csv"), "--hits", str(ws / "junk.jsonl"),
            "--out", str(ws / "j.xlsx"))
    assert r.returncode == 2 and "junk.jsonl: line 1" in r.stderr.decode()
