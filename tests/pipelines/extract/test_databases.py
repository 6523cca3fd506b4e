"""Database files made by SQLite itself (python's sqlite3): every table, every row a record
at "table!<column><rowid>", under the limits, hostile files contained; Access through
mdbtools where it is installed."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import sqlite3
import zipfile
from pathlib import Path

import pytest

from leaksentry.synth import patients
from pipelines.extract import detect
from pipelines.model import CELL_SEP, Document
from pipelines.process import DocumentScanner


def make_db(path: Path, people, *, page_size: int = 4096, wal: bool = False,
            extra_tables: int = 0) -> bytes:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA page_size={page_size}")
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE patients (id INTEGER PRIMARY KEY, name TEXT, gender TEXT,"
                 " hkid TEXT, hn TEXT, note BLOB, weight REAL)")
    conn.executemany("INSERT INTO patients (name, gender, hkid, hn, note, weight)"
                     " VALUES (?,?,?,?,?,?)",
                     [(p.name, p.gender, p.hkid, p.hn, b"\x00\xff binary", 61.5)
                      for p in people])
    for i in range(extra_tables):
        conn.execute(f"CREATE TABLE t{i} (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID")
        conn.execute(f"INSERT INTO t{i} VALUES ('a', 'b')")
    conn.commit()
    if wal:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path.read_bytes()


@pytest.mark.parametrize("page_size", [512, 4096, 65536])
def test_every_row_of_every_table_with_rowid_and_header(ext, people, tmp_path, page_size):
    data = make_db(tmp_path / "his.db", people, page_size=page_size, extra_tables=2)
    assert detect(data, "export") == "sqlite"  # by its magic, no extension needed
    r = ext.run(data, "export")
    assert r.status == "ok" and r.ex.skipped == []
    r.assert_all_found(people)
    first = r.where(people[0].hkid)[0]
    assert (first.location, first.row) == ("patients", 1)
    assert first.header == ("id", "name", "gender", "hkid", "hn", "note", "weight")
    cells = first.string.split(CELL_SEP)
    assert cells[3] == people[0].hkid and cells[5] == "" and cells[6] == "61.5"
    assert {p.location for p in r.parts} == {"patients", "t0", "t1"}
    ext.no_identifiers(r.outputs(), people)


def test_wal_mode_copy_and_archive_member(ext, people, tmp_path):
    data = make_db(tmp_path / "wal.sqlite", people, wal=True)
    assert data[18:20] == b"\x02\x02"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("backup/his.db", data)
    r = ext.run(buf.getvalue(), "backup.zip")
    assert r.status == "ok"
    r.assert_all_found(people)
    assert r.where(people[0].hkid)[0].location == "backup.zip/backup/his.db/patients"


def test_sql_dump_as_text_plain_and_compressed(ext, people, tmp_path):
    make_db(tmp_path / "d.db", people)
    conn = sqlite3.connect(tmp_path / "d.db")
    dump = "\n".join(conn.iterdump()).encode()
    conn.close()
    for data, name in ((dump, "dump.sql"), (gzip.compress(dump), "dump.sql.gz")):
        r = ext.run(data, name)
        assert r.status == "ok"
        r.assert_all_found(people)


def test_200_row_table_recall_through_the_matcher(ext, real_matcher, tmp_path):
    planted = list(patients(200, seed=3))  # the register's first 200 records
    data = make_db(tmp_path / "big.db", planted)
    doc = Document(url="file:///big.db", source="test", content=data, filename="big.db")
    with DocumentScanner(real_matcher, mode="inline") as scanner:
        result = scanner.scan(doc).result
    assert result.status == "ok" and result.skipped == []
    assert sorted(result.record_refs, key=int) == [str(i) for i in range(1, 201)]
    assert sorted(result.record_level_refs, key=int) == [str(i) for i in range(1, 201)]
    first = next(m for m in result.matches if m.record_ref == "1" and m.kind == "hkid")
    assert first.where == "patients!D1"  # table!<column of hkid><rowid>
    ext.no_identifiers(json.dumps([m.to_json() for m in result.matches])
                       + json.dumps(result.details) + repr(result.snippets), planted)


def _corrupt_second_table(path: Path, people) -> bytes:
    """Two tables; the second's root b-tree page overwritten with garbage."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA page_size=1024")
    conn.execute("CREATE TABLE good (name TEXT, hkid TEXT, hn TEXT)")
    conn.executemany("INSERT INTO good VALUES (?,?,?)", [(p.name, p.hkid, p.hn)
                                                         for p in people[:6]])
    conn.execute("CREATE TABLE bad (name TEXT, hkid TEXT, hn TEXT)")
    conn.executemany("INSERT INTO bad VALUES (?,?,?)", [(p.name, p.hkid, p.hn)
                                                        for p in people[6:]] * 30)
    conn.commit()
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='bad'").fetchone()
    conn.close()
    data = bytearray(path.read_bytes())
    start = (root - 1) * 1024
    data[start:start + 1024] = bytes([0x0D, 0xFF, 0xFF]) + b"\xee" * 1021
    return bytes(data)


def test_corrupt_page_costs_only_its_table(ext, people, tmp_path):
    data = _corrupt_second_table(tmp_path / "c.db", people)
    r = ext.run(data + b"", "c.db")
    for p in people[:6]:
        assert r.where(p.hkid), "rows of the intact table are read"
    assert [(s.where, s.status) for s in r.ex.skipped] == [("bad", "corrupt")]
    assert r.status == "corrupt" and "bad" in (r.ex.error or "")
    ext.no_identifiers(r.outputs() + repr(r.ex.skipped), people)


def test_hostile_databases_in_one_batch(ext, people, tmp_path):
    """A corrupt page, a truncated file, garbage after the magic, a schema that names a
    missing extension module, a trigger and a view: statuses, never a crash; the CSV
    next to them is still scanned."""
    good = make_db(tmp_path / "g.db", people)
    conn = sqlite3.connect(tmp_path / "h.db")
    conn.execute("CREATE TABLE t (a TEXT)")
    conn.execute("CREATE VIEW v AS SELECT load_extension('/tmp/x') AS a")
    conn.execute("CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END")
    conn.execute("INSERT INTO t VALUES ('x')")
    conn.commit()
    conn.close()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("corrupt.db", _corrupt_second_table(tmp_path / "c.db", people))
        zf.writestr("truncated.db", good[:1500])
        zf.writestr("garbage.db", b"SQLite format 3\x00" + b"\xff" * 5000)
        zf.writestr("views.db", (tmp_path / "h.db").read_bytes())
        zf.writestr("patients.csv", "\n".join(f"{p.name},{p.hkid},{p.hn}" for p in people))
    r = ext.run(buf.getvalue(), "batch.zip")
    r.assert_all_found(people)  # from the CSV (and what the corrupt db kept)
    assert r.status == "corrupt"
    where = {s.where for s in r.ex.skipped}
    assert "batch.zip/corrupt.db/bad" in where
    assert {"batch.zip/truncated.db", "batch.zip/garbage.db"} <= where
    ext.no_identifiers(r.outputs() + repr(r.ex.skipped), people)


def test_nothing_in_the_file_is_executed_or_written(tmp_path):
    from leaksentry.config.extract import ExtractConfig
    from pipelines.extract.databases import _open
    from pipelines.extract.node import Node
    from pipelines.extract.state import State

    conn = sqlite3.connect(tmp_path / "x.db")
    conn.execute("CREATE TABLE t (a TEXT)")
    conn.commit()
    conn.close()
    db = _open((tmp_path / "x.db").read_bytes(), Node("", "x.db"),
               State(ExtractConfig(), 10))
    for sql in ("INSERT INTO t VALUES ('y')", "ATTACH DATABASE '/tmp/evil.db' AS e",
                "SELECT load_extension('/tmp/x')", "PRAGMA writable_schema=ON"):
        with pytest.raises(sqlite3.DatabaseError):
            db.execute(sql)
    assert not Path("/tmp/evil.db").exists()


def test_table_limit(ext, people, tmp_path):
    from leaksentry.config.extract import ExtractConfig

    data = make_db(tmp_path / "many.db", people, extra_tables=12)
    r = ext.run(data, "many.db", ExtractConfig(max_members=5))
    assert r.status == "too_large" and "database tables" in (r.ex.error or "")


@pytest.mark.skipif(not shutil.which("mdb-tables"), reason="mdbtools not installed")
def test_access_database_through_mdbtools(ext, people, monkeypatch, tmp_path):
    """mdbtools cannot write .mdb and no real .mdb ships with a Debian or PyPI package
    here, so the tools are stood in for by scripts that answer as mdb-tables/mdb-export
    do: what is tested is the detection, the memory-file path, the CSV reading and the
    per-table failure (a table the tool cannot export is skipped, the rest read)."""
    import csv

    out = io.StringIO()
    csv.writer(out).writerows([["Name", "HKID", "HospNo"]]
                              + [[p.name, p.hkid, p.hn] for p in people])
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "export.csv").write_text(out.getvalue())
    (bin_dir / "mdb-tables").write_text("#!/bin/sh\ntest -r \"$2\" || exit 3\n"
                                        "printf 'Patients\\nBroken\\n'\n")
    (bin_dir / "mdb-export").write_text(
        "#!/bin/sh\ntest -r \"$3\" || exit 3\n"
        f"[ \"$4\" = Patients ] && exec cat {tmp_path / 'export.csv'}\n"
        "echo 'Error: table is damaged' >&2; exit 1\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    data = b"\x00\x01\x00\x00Standard Jet DB\x00" + b"\x00" * 2000
    assert detect(data, "clinic.mdb") == "access"
    r = ext.run(data, "clinic.mdb")
    r.assert_all_found(people)
    first = r.where(people[0].hkid)[0]
    assert (first.location, first.row, first.header) == ("Patients", 1,
                                                         ("Name", "HKID", "HospNo"))
    assert [(s.where, s.status) for s in r.ex.skipped] == [("Broken", "corrupt")]


@pytest.mark.skipif(not shutil.which("mdb-tables"), reason="mdbtools not installed")
def test_real_mdbtools_on_a_damaged_access_file(ext):
    """The real mdb-tables on a file with the Jet magic but no database behind it."""
    data = b"\x00\x01\x00\x00Standard Jet DB\x00" + b"\x00" * 4096
    r = ext.run(data, "clinic.mdb")
    assert r.status == "corrupt" and "mdb-tables" in (r.ex.error or "")
    assert r.parts == []


def test_documents_stored_in_blobs_are_extracted(ext, people, tmp_path):
    import docx

    d = docx.Document()
    d.add_paragraph(" ".join(f"{p.name} {p.hkid} {p.hn}" for p in people[:6]))
    d.save(buf := io.BytesIO())
    csv_zip = io.BytesIO()
    with zipfile.ZipFile(csv_zip, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("rest.csv", "\n".join(f"{p.name},{p.hkid},{p.hn}" for p in people[6:]))
    conn = sqlite3.connect(tmp_path / "a.db")
    conn.execute("CREATE TABLE attachments (id INTEGER PRIMARY KEY, name TEXT, content BLOB,"
                 " thumb BLOB)")
    conn.execute("INSERT INTO attachments (name, content, thumb) VALUES (?,?,?)",
                 ("letter.docx", buf.getvalue(), b"\x00\x01" * 100))
    conn.execute("INSERT INTO attachments (name, content) VALUES (?,?)",
                 ("batch.zip", csv_zip.getvalue()))
    conn.commit()
    conn.close()
    r = ext.run((tmp_path / "a.db").read_bytes(), "a.db")
    assert r.status == "ok" and r.ex.skipped == []
    r.assert_all_found(people)
    assert r.where(people[0].hkid)[0].location == "a.db/attachments/1/content/document"
    assert r.where(people[7].hkid)[0].location == "a.db/attachments/2/content/rest.csv"
