"""`leaksentry fingerprints build | info` as a user runs them: real subprocesses."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from leaksentry import synth


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "leaksentry", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("fpcli")
    assert run("keygen", "--out", str(d / "key")).returncode == 0
    rows = list(synth.register_rows(120, seed=9))
    rows[0] = ["Patient Ref", "Name", "Chinese name", "Sex", "HKID Number", "Hosp No", "Proc"]
    rows[4][4] = "Z999999(9)"  # data row 4: wrong check character
    rows[6][4] = rows[1][4]  # data row 6 repeats row 1
    with open(d / "reg.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return d


def test_build_reports_counts_and_rows_only(ws: Path) -> None:
    r = run("fingerprints", "build", "--key", str(ws / "key"), "--out", str(ws / "fp"),
            "--hkid-column", "HKID Number", "--hn-column", "Hosp No",
            "--ref-column", "Patient Ref", str(ws / "reg.csv"))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "120 rows" in out and "239 identifiers" in out
    assert "rows 4" in out and "rows 6" in out  # invalid and duplicate rows, by number
    assert "Z999999" not in out + r.stderr
    r = run("fingerprints", "info", "--json", str(ws / "fp"))
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["entries"] == 239 and info["records"] == 120
    assert info["kinds"] == {"hkid": 119, "hn": 120}
    assert info["ref_column"] == "Patient Ref"
    assert len(info["key_id"]) == 16
    r = run("fingerprints", "info", str(ws / "fp"))
    assert r.returncode == 0 and info["key_id"] in r.stdout


def test_build_json_report(ws: Path) -> None:
    r = run("fingerprints", "build", "--key", str(ws / "key"), "--out", str(ws / "fp2"),
            "--hkid-column", "HKID Number", "--json", str(ws / "reg.csv"))
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["rows"] == 120 and rep["kinds"]["hkid"]["invalid_rows"] == [4]
    assert rep["kinds"]["hkid"]["duplicate_rows"] == [6]
    assert list(rep["kinds"]) == ["hkid", "hn"]  # hn found by its column name


@pytest.mark.parametrize(("args", "needle"), [
    (["--hkid-column", "HKID"], "'HKID'"),
    (["--ref-column", "Ref No"], "'Ref No'"),
])
def test_missing_column(ws: Path, args: list[str], needle: str) -> None:
    r = run("fingerprints", "build", "--key", str(ws / "key"), "--out", str(ws / "fp3"), *args,
            str(ws / "reg.csv"))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and str(ws / "reg.csv") in lines[0]
    assert not (ws / "fp3").exists()


@pytest.mark.parametrize(("content", "needle"), [(b"", "empty"), (b"hkid\n", "no data rows")])
def test_empty_register(ws: Path, content: bytes, needle: str) -> None:
    (ws / "empty.csv").write_bytes(content)
    r = run("fingerprints", "build", "--key", str(ws / "key"), "--out", str(ws / "fp4"),
            str(ws / "empty.csv"))
    assert r.returncode == 2 and needle in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_info_on_a_damaged_file(ws: Path) -> None:
    (ws / "bad").write_bytes(b"LSFPRINT" + b"\0" * 10)
    r = run("fingerprints", "info", str(ws / "bad"))
    assert r.returncode == 2 and str(ws / "bad") in r.stderr
    assert "Traceback" not in r.stderr
