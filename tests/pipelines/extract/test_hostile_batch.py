"""The hostile files of this round's formats, one after another through the real worker
(warm, memory-capped): each ends in a status within the limits, and the leak scanned
after them is still found. The silent-miss rule through the same path."""

from __future__ import annotations

import importlib.util
import io
import json
import sqlite3
import zipfile
from pathlib import Path

from leaksentry.config.extract import ExtractConfig
from pipelines.model import Document
from pipelines.process import DocumentScanner

HERE = Path(__file__).parent


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"extract_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _corrupt_db(path: Path, people) -> bytes:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA page_size=1024")
    conn.execute("CREATE TABLE t (name TEXT, hkid TEXT, hn TEXT)")
    conn.executemany("INSERT INTO t VALUES (?,?,?)", [(p.name, p.hkid, p.hn)
                                                      for p in people] * 40)
    conn.commit()
    conn.close()
    data = bytearray(path.read_bytes())
    data[2048:3072] = b"\x0d\xff\xff" + b"\xee" * 1021  # a b-tree page overwritten
    return bytes(data)


def test_hostile_files_then_a_leak(ext, people, real_matcher, tmp_path):
    cfb = _module("cfb")
    office = _module("test_office")
    deep = cfb.msg("bottom", "x", embedded=True)
    for i in range(40):
        deep = cfb.msg(f"level {i}", "fwd", [(f"fwd{i}.msg", deep)], embedded=True)
    xfd = _module("test_sheet_fallback").workbook(people)
    hostile = {
        "corrupt.db": _corrupt_db(tmp_path / "c.db", people),
        "deep.msg": cfb.msg_file("top", "fwd", [("fwd.msg", deep)]),
        "laughs.odt": office._odt_with_content(office.BILLION_LAUGHS),
        "bomb.rar": (HERE / "fixtures" / "rar" / "seektest.rar").read_bytes(),
        "xfd.xlsx": xfd,
        "garbage.doc": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\xff" * 3000,
    }
    leak = ("name,hkid,hn\n" + "".join(f"{p.name},{p.hkid},{p.hn}\n" for p in people)).encode()
    config = ExtractConfig(max_expanded_bytes=1500 * 1024, ratio_floor_bytes=1024,
                           max_expansion_ratio=1.5, worker_mode="warm")
    results = {}
    with DocumentScanner(real_matcher, config) as scanner:
        for name, data in [*hostile.items(), ("leak.csv", leak)]:
            doc = Document(url=f"file:///{name}", source="test", content=data, filename=name)
            results[name] = scanner.scan(doc).result
    assert results["corrupt.db"].status == "corrupt"
    assert results["deep.msg"].status == "too_large"
    assert results["laughs.odt"].parts < 5  # nothing expanded (any status)
    assert results["bomb.rar"].status == "too_large"  # expansion ratio over 1.5
    assert results["xfd.xlsx"].status in ("ok", "too_large")
    assert results["garbage.doc"].status in ("corrupt", "unsupported")
    assert sorted(results["leak.csv"].record_refs, key=int) == [p.ref for p in people]
    for name, r in results.items():
        assert r.status in ("ok", "corrupt", "too_large", "unsupported"), (name, r.error)
        ext.no_identifiers(json.dumps([s.to_json() for s in r.skipped]) + (r.error or "")
                           + json.dumps(r.details, default=str), people)


def test_skipped_and_partial_come_back_from_the_worker(ext, people, real_matcher):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("setup.exe", b"MZ" + b"\x00" * 100)  # no handler: unsupported
        zf.writestr("export.csv", "".join(f"{p.name},{p.hkid},{p.hn}\n" for p in people))
    doc = Document(url="file:///backup.zip", source="test", content=buf.getvalue(),
                   filename="backup.zip")
    for mode in ("warm", "fork", "inline"):
        with DocumentScanner(real_matcher, mode=mode) as scanner:
            finding = scanner.scan(doc)
        r = finding.result
        assert r.matched_records == len(people) and r.partial, mode
        out = finding.scan_json()
        assert out["skipped"] == [{"where": "backup.zip/setup.exe", "status": "unsupported",
                                   "error": "backup.zip/setup.exe: unsupported type exe"}]
        assert out["partial"] is True
