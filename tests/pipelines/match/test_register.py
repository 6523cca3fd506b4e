"""Building fingerprints from a register: CSV and XLSX, counts and rows only."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import xlsxwriter

from leaksentry import synth
from leaksentry.errors import RegisterError
from pipelines.match import Matcher, build_fingerprints, generate_key, read_key
from pipelines.match.fpfile import FingerprintSet
from pipelines.model import TextPart


@pytest.fixture
def key(tmp_path: Path) -> bytes:
    generate_key(tmp_path / "key")
    return read_key(tmp_path / "key")


def _csv(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return path


def test_csv_counts_invalid_and_duplicates(tmp_path: Path, key: bytes) -> None:
    rows = list(synth.register_rows(50, seed=3))
    rows[5][4] = "A123456(9)"  # data row 5: invalid check digit
    rows[7][4] = ""  # data row 7: empty
    rows[9][4] = rows[2][4]  # data row 9 repeats row 2's HKID
    reg = _csv(tmp_path / "reg.csv", rows)
    report = build_fingerprints(reg, key, tmp_path / "fp")
    hk = report.kinds["hkid"]
    assert report.rows == 50
    assert (hk.written, hk.invalid, hk.invalid_rows, hk.empty) == (48, 1, [5], 1)
    assert (hk.duplicates, hk.duplicate_rows) == (1, [9])
    assert report.kinds["hn"].written == 50 and report.identifiers == 98
    # the report carries no identifier
    text = json.dumps(report.to_json())
    for p in synth.patients(50, seed=3):
        assert p.hkid not in text and p.hn not in text
    # both rows holding the duplicated HKID are reported when it is found
    m = Matcher.load(tmp_path / "key", tmp_path / "fp")
    r = m.scan([TextPart(f"id {rows[2][4]}")])
    assert r.record_refs == ["2", "9"]


def test_xlsx_register_with_ref_column(tmp_path: Path, key: bytes) -> None:
    reg = tmp_path / "reg.xlsx"
    wb = xlsxwriter.Workbook(str(reg))
    ws = wb.add_worksheet("patients")
    pts = list(synth.patients(20, seed=4))
    ws.write_row(0, 0, ["Patient ID", "Name", "HKID No", "Hosp No"])
    for i, p in enumerate(pts, start=1):
        ws.write_row(i, 0, [f"PT-{1000 + i}", p.name, f"{p.hkid[:-1]}({p.hkid[-1]})", p.hn])
    wb.close()
    report = build_fingerprints(reg, key, tmp_path / "fp", hkid_column="HKID No",
                                hn_column="Hosp No", ref_column="Patient ID")
    assert report.rows == 20 and report.identifiers == 40
    fp = FingerprintSet(tmp_path / "fp", key)
    assert fp.ref_table and fp.ref(3) == "PT-1003"
    m = Matcher.load(tmp_path / "key", tmp_path / "fp")
    r = m.scan([TextPart(f"leak: {pts[2].hn} / {pts[10].hkid}")])
    assert r.record_refs == ["PT-1003", "PT-1011"]


def test_missing_column(tmp_path: Path, key: bytes) -> None:
    reg = _csv(tmp_path / "reg.csv", list(synth.register_rows(3)))
    with pytest.raises(RegisterError) as exc:
        build_fingerprints(reg, key, tmp_path / "fp", hkid_column="HKID Number")
    msg = str(exc.value)
    assert "'HKID Number'" in msg and str(reg) in msg and "\n" not in msg
    with pytest.raises(RegisterError, match="ref"):
        build_fingerprints(reg, key, tmp_path / "fp", ref_column="nope")
    assert not (tmp_path / "fp").exists()


def test_no_identifier_column_found(tmp_path: Path, key: bytes) -> None:
    reg = _csv(tmp_path / "reg.csv", [["a", "b"], ["1", "2"]])
    with pytest.raises(RegisterError, match="no identifier column"):
        build_fingerprints(reg, key, tmp_path / "fp")


@pytest.mark.parametrize(("content", "msg"), [
    (b"", "empty"), (b"hkid,hn\n", "no data rows"), (b"hkid\nfoo\nbar\n", "no valid"),
    (b"\x00\x01\x02binary", "not a CSV"), (b"hkid\n\xff\xfe\xfa\n", "not UTF-8"),
])
def test_bad_registers(tmp_path: Path, key: bytes, content: bytes, msg: str) -> None:
    (tmp_path / "reg.csv").write_bytes(content)
    with pytest.raises(RegisterError, match=msg):
        build_fingerprints(tmp_path / "reg.csv", key, tmp_path / "fp")
    with pytest.raises(RegisterError, match="not found"):
        build_fingerprints(tmp_path / "nope.csv", key, tmp_path / "fp")


@pytest.mark.parametrize("engine", ["hyperscan", "re"])
def test_custom_kind_end_to_end(tmp_path: Path, key: bytes, engine: str) -> None:
    from leaksentry.config.matching import MatchingConfig

    cfg = MatchingConfig(kinds=[{"name": "mrn", "pattern": r"MRN-?\d{6}", "column": "mrn",
                                 "checksum": "luhn"}])
    # MRN-000018 and MRN-000026 pass Luhn; MRN-000019 does not
    reg = _csv(tmp_path / "reg.csv", [["hkid", "mrn"], ["A1234563", "MRN-000018"],
                                       ["G123456A", "MRN000026"], ["", "MRN-000019"]])
    report = build_fingerprints(reg, key, tmp_path / "fp", config=cfg)
    assert report.kinds["mrn"].written == 2 and report.kinds["mrn"].invalid_rows == [3]
    m = Matcher.load(tmp_path / "key", tmp_path / "fp", cfg, engine=engine)
    r = m.scan([TextPart("see MRN000026 and MRN-000018x and XMRN-000018 and MRN-000042")])
    assert r.record_refs == ["2"]
    assert [(x.kind, x.masked) for x in r.matches] == [("mrn", "MRN00****")]
    assert r.unmatched_valid == {"hkid": 0, "mrn": 1}  # MRN-000042 passes Luhn, not registered


def test_worker_processes_give_the_same_file(tmp_path: Path, key: bytes,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.match import register as reg_mod

    rows = list(synth.register_rows(3000, seed=8))
    rows[2000][4] = "A123456(9)"  # invalid, in a chunk digested by a worker
    rows[2500][5] = ""
    reg = _csv(tmp_path / "reg.csv", rows)
    one = build_fingerprints(reg, key, tmp_path / "fp1", workers=1)
    monkeypatch.setattr(reg_mod, "CHUNK_ROWS", 256)
    monkeypatch.setattr(reg_mod, "PARALLEL_AFTER_ROWS", 300)
    two = build_fingerprints(reg, key, tmp_path / "fp2", workers=2)
    assert one.to_json() == two.to_json()
    assert two.kinds["hkid"].invalid_rows == [2000] and two.kinds["hn"].empty == 1
    a, b = FingerprintSet(tmp_path / "fp1", key), FingerprintSet(tmp_path / "fp2", key)
    assert (a.digests == b.digests).all() and (a.meta == b.meta).all()
