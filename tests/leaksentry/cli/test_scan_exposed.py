"""`leaksentry scan` says what each leak exposed (real subprocesses): `--json` carries
``exposed_fields``/``exposed_categories``, the human output a line of them, and after
`--index` the `hits` table an "exposed" column; never a planted value."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import xlsxwriter

from leaksentry import synth
from pipelines.match import build_fingerprints, generate_key, read_key

PEOPLE = list(synth.patients(30, seed=44))


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "leaksentry", *args], capture_output=True,
                          timeout=180, env=env)


def test_scan_json_and_human_output_say_what_was_exposed(tmp_path: Path) -> None:
    generate_key(tmp_path / "key")
    with open(tmp_path / "register.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(synth.register_rows(len(PEOPLE), seed=44))
    build_fingerprints(tmp_path / "register.csv", read_key(tmp_path / "key"), tmp_path / "fp")
    leaks = tmp_path / "leaks"
    leaks.mkdir()
    wb = xlsxwriter.Workbook(str(leaks / "ot.xlsx"))
    ws = wb.add_worksheet("Sheet1")
    ws.write_row(0, 0, ["Patient Name", "Gender", "HKID", "Hospital No", "Procedure"])
    for r, p in enumerate(PEOPLE[:10], 1):
        ws.write_row(r, 0, [p.name, p.gender, p.hkid, p.hn, p.procedure])
    wb.close()
    (leaks / "paste.txt").write_text("\n".join(
        f"Name: {p.name}\nHKID: {p.hkid}\nDiagnosis: {p.procedure}\n" for p in PEOPLE[10:20]),
        encoding="utf-8")
    (leaks / "dump.sql").write_text(
        "INSERT INTO patients (patient_name, hkid, hn, addr) VALUES "
        + ",".join(f"('{p.name}', '{p.hkid}', '{p.hn}', 'Kowloon')" for p in PEOPLE[20:])
        + ";\n", encoding="utf-8")
    base = ["scan", "--key", str(tmp_path / "key"), "--fingerprints", str(tmp_path / "fp")]
    r = run(*base, "--json", str(leaks))
    assert r.returncode == 1, r.stderr
    docs = {Path(d["path"]).name: d for d in map(json.loads, r.stdout.decode().splitlines())}
    assert docs["ot.xlsx"]["exposed_fields"] == ["Patient Name", "Gender", "HKID",
                                                 "Hospital No", "Procedure"]
    assert docs["ot.xlsx"]["exposed_categories"] == ["name", "gender", "diagnosis/procedure",
                                                     "identifier"]
    assert docs["paste.txt"]["exposed_fields"] == ["Name", "HKID", "Diagnosis"]
    assert docs["dump.sql"]["exposed_fields"] == ["patient_name", "hkid", "hn", "addr"]
    assert docs["dump.sql"]["exposed_categories"] == ["name", "address", "identifier"]

    human = run(*base, str(leaks / "ot.xlsx")).stdout.decode()
    assert ("exposed: name, gender, diagnosis/procedure, identifier (Patient Name, Gender,"
            " HKID, Hospital No, Procedure)") in " ".join(human.split())

    env = {"LEAKSENTRY_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin",
           "COLUMNS": "300"}
    assert run(*base, "--index", str(leaks), env=env).returncode == 1
    table = run("hits", env=env).stdout.decode()
    assert "exposed" in table and "diagnosis/procedure" in table
    listed = [json.loads(x) for x in run("hits", "--json", env=env).stdout.decode().splitlines()]
    assert sorted(h["exposed_categories"][0] for h in listed) == ["name", "name", "name"]

    out = r.stdout.decode() + human + table
    for p in PEOPLE:
        for value in (p.hkid, p.hn, p.name, p.procedure, f"{p.hkid[:-1]}({p.hkid[-1]})"):
            assert value not in out
