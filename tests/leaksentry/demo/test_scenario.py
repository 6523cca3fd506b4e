"""The demo scenario generator: disjoint planted refs, readable files, no identifiers
outside the register."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import zipfile
from pathlib import Path

import pytest
import pyzipper
from python_calamine import CalamineWorkbook

from leaksentry.demo.scenario import (
    SEVERITY_THRESHOLDS,
    build_scenario,
    expected_severity,
    planted_identifiers,
    stranger_hkids,
)
from leaksentry.identifiers.hkid import is_valid_canonical

ROWS = 300


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory):
    return build_scenario(tmp_path_factory.mktemp("demo"), export_rows=ROWS, register_extra=150)


def _register(sc) -> dict[str, dict[str, str]]:
    with sc.register.open(encoding="utf-8", newline="") as fh:
        return {r["ref"]: r for r in csv.DictReader(fh)}


def _canon(s: str) -> str:
    import unicodedata

    return re.sub(r"[\s()]", "", unicodedata.normalize("NFKC", s)).upper()


def test_severity_thresholds() -> None:
    assert expected_severity(0) == "none"
    assert expected_severity(SEVERITY_THRESHOLDS["low"]) == "low"
    assert expected_severity(SEVERITY_THRESHOLDS["medium"]) == "medium"
    assert expected_severity(SEVERITY_THRESHOLDS["high"]) == "high"
    assert expected_severity(SEVERITY_THRESHOLDS["critical"]) == "critical"


def test_register_and_refs(scenario) -> None:
    reg = _register(scenario)
    assert len(reg) == scenario.register_size == ROWS + 150
    assert oct(scenario.register.stat().st_mode & 0o777) == "0o600"
    all_refs = [r for it in scenario.items for r in it.refs]
    assert len(all_refs) == len(set(all_refs)), "planted blocks overlap"
    assert set(all_refs) <= set(reg)
    assert scenario.item("xlsx-export").refs == tuple(str(i) for i in range(1, ROWS + 1))
    assert {it.site for it in scenario.items} == {"feed", "directory", "rendered", "watch"}
    markers = [it.marker for it in scenario.items]
    assert len(markers) == len(set(markers))
    # decoys and harmless items leak nothing
    for it in scenario.items:
        if it.decoy:
            assert not it.refs and it.severity == "none"


def test_xlsx_export_holds_the_export_rows(scenario) -> None:
    reg = _register(scenario)
    path = scenario.directory_root / "exports" / "ot_patients_2026Q3.xlsx"
    rows = CalamineWorkbook.from_path(str(path)).get_sheet_by_name("Export").to_python()
    assert len(rows) == ROWS + 1
    assert [_canon(r[3]) for r in rows[1:]] == [reg[str(i)]["hkid"] for i in range(1, ROWS + 1)]


def test_zip_base64_encrypted_and_js_items(scenario) -> None:
    reg = _register(scenario)
    by_hkid = {r["hkid"]: ref for ref, r in reg.items()}

    def refs_in_csv(data: bytes) -> set[str]:
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
        return {by_hkid[_canon(r["hkid"])] for r in rows}

    with zipfile.ZipFile(scenario.directory_root / "shared" / "ward_lists.zip") as zf:
        got = refs_in_csv(zf.read("ward_lists/surgical_ward_B.csv"))
    assert got == set(scenario.item("zip-csv").refs)

    paste = next(p for p in scenario.pastes if p.key == scenario.item("paste-base64").marker)
    blob = "".join(paste.body.decode().split("\n\n", 1)[1].split())
    assert refs_in_csv(base64.b64decode(blob)) == set(scenario.item("paste-base64").refs)

    target = scenario.watch_root / scenario.watch_path.lstrip("/")
    with pyzipper.AESZipFile(target) as zf:
        with pytest.raises(RuntimeError):
            zf.read("export/full_patient_list.csv")  # no password: encrypted
        zf.setpassword(scenario.passwords[0].encode())
        got = refs_in_csv(zf.read("export/full_patient_list.csv"))
    assert got == set(scenario.item("encrypted-zip").refs)
    pw_paste = next(p for p in scenario.pastes if p.key == scenario.item("paste-password").marker)
    assert scenario.passwords[0].encode() in pw_paste.body

    # the JavaScript page holds no identifier in its raw HTML
    html = (scenario.rendered_root / "t" / "48213.html").read_text()
    for ref in scenario.item("rendered-thread").refs:
        assert reg[ref]["hkid"][:-1] not in html
        assert reg[ref]["hn"] not in html


def test_decoy_pastes(scenario) -> None:
    reg = _register(scenario)
    hkids = {r["hkid"] for r in reg.values()}
    strangers = stranger_hkids(hkids, scenario.seed)
    assert len(strangers) == 2
    assert all(is_valid_canonical(h) and h not in hkids for h in strangers)
    body = next(p for p in scenario.pastes
                if p.key == scenario.item("paste-strangers").marker).body.decode()
    assert sum(_canon(h[:-1]) in _canon(body) for h in strangers) == 2
    lookalikes = next(p for p in scenario.pastes
                      if p.key == scenario.item("paste-lookalikes").marker).body.decode()
    for m in re.finditer(r"\b([A-Z]{1,2}\d{6})\(([0-9A])\)", lookalikes):
        assert not is_valid_canonical(m.group(1) + m.group(2))


def test_expected_json_has_refs_but_no_identifiers(scenario) -> None:
    text = scenario.expected_path.read_text()
    data = json.loads(text)
    assert {i["key"] for i in data["items"]} == {it.key for it in scenario.items}
    assert next(i for i in data["items"] if i["key"] == "xlsx-export")["refs"][:2] == ["1", "2"]
    idents = planted_identifiers(scenario)
    assert len(idents) > 5 * scenario.register_size
    leaked = [i for i in idents if i in text]
    assert not leaked, f"{len(leaked)} identifiers in expected.json"


def test_same_seed_same_register(tmp_path: Path) -> None:
    a = build_scenario(tmp_path / "a", export_rows=20, register_extra=80)
    b = build_scenario(tmp_path / "b", export_rows=20, register_extra=80)
    assert a.register.read_bytes() == b.register.read_bytes()
    assert [it.refs for it in a.items] == [it.refs for it in b.items]
