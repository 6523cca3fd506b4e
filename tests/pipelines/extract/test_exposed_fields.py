"""What a hit exposed, through the real extractors and the real matcher: the labels of the
fields around the identifiers (table headers, SQL column names, ``Label:`` in text) and
their categories. Never a cell value: planted names, identifiers and procedures are
searched for in every result."""

from __future__ import annotations

import csv
import io
import json

import pytest

from leaksentry.config.matching import MatchingConfig
from pipelines.match import Matcher
from pipelines.model import Document, ScanResult
from pipelines.process import DocumentScanner


def scan(matcher: Matcher, name: str, content: bytes) -> ScanResult:
    doc = Document(url=f"file:///{name}", source="test", content=content, filename=name)
    with DocumentScanner(matcher, mode="inline") as scanner:
        result = scanner.scan(doc).result
    assert result.status == "ok", result.error
    return result


def no_values(result: ScanResult, people, ext) -> None:
    """Nothing but labels: no planted identifier (any form), name or procedure."""
    text = json.dumps([result.exposed_fields, result.exposed_categories], ensure_ascii=False)
    ext.no_identifiers(text, people)
    for p in people:
        assert p.name not in text and p.name_zh not in text
        for word in p.name.split():
            assert f'"{word}"' not in text
        assert p.procedure not in text


def _csv(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode()


def _xlsx(rows: list[list[str]], title: str | None = None) -> bytes:
    import xlsxwriter

    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True})
    ws = wb.add_worksheet("Patients")
    r0 = 0
    if title:
        ws.write_row(0, 0, [title])
        r0 = 2
    for r, row in enumerate(rows):
        ws.write_row(r0 + r, 1, row)  # from column B: the header need not start at A
    wb.close()
    return buf.getvalue()


def test_xlsx_with_english_headers(ext, people, real_matcher):
    head = ["Patient Name", "Gender", "HKID", "Hospital No", "Procedure", "Date of Birth",
            "Remarks"]
    rows = [head] + [[p.name, p.gender, p.hkid, p.hn, p.procedure, "", ""] for p in people]
    r = scan(real_matcher, "export.xlsx", _xlsx(rows, title="Ward 7 list"))
    assert r.matched_records == len(people)
    # the empty columns (date of birth, remarks) exposed nothing; the title is no header
    assert r.exposed_fields == ["Patient Name", "Gender", "HKID", "Hospital No", "Procedure"]
    assert r.exposed_categories == ["name", "gender", "diagnosis/procedure", "identifier"]
    no_values(r, people, ext)


@pytest.mark.parametrize(("head", "cats"), [
    (["姓名", "性別", "出生日期", "身份證號碼", "病人編號", "地址", "電話", "手術"],
     ["name", "gender", "dob", "address", "phone", "diagnosis/procedure", "identifier"]),
    (["病人姓名", "性别", "身份证号码", "医院编号", "诊断"],
     ["name", "gender", "diagnosis/procedure", "identifier"]),
], ids=["traditional", "simplified"])
def test_csv_with_chinese_headers(ext, people, real_matcher, head, cats):
    def row(p):
        values = {"姓名": p.name_zh, "病人姓名": p.name_zh, "性別": p.gender, "性别": p.gender,
                  "出生日期": "1970-01-01", "身份證號碼": p.hkid, "身份证号码": p.hkid,
                  "病人編號": p.hn, "医院编号": p.hn, "地址": "九龍", "電話": "9123 4567",
                  "手術": p.procedure, "诊断": p.procedure}
        return [values[h] for h in head]

    r = scan(real_matcher, "名單.csv", _csv([head] + [row(p) for p in people]))
    assert r.matched_records == len(people)
    assert r.exposed_fields == head
    assert r.exposed_categories == cats
    no_values(r, people, ext)


def test_text_paste_with_name_labels(ext, people, real_matcher):
    blocks = [f"Name: {p.name}\nSex: {p.gender}\nHKID: {p.hkid[:-1]}({p.hkid[-1]})\n"
              f"Hospital No.: {p.hn}\nOperation: {p.procedure}" for p in people]
    paste = "Found this on a forum, see below\n\n" + "\n\n".join(blocks) + "\n"
    r = scan(real_matcher, "paste.txt", paste.encode())
    assert r.matched_records == len(people)
    assert r.exposed_fields == ["Name", "Sex", "HKID", "Hospital No.", "Operation"]
    assert r.exposed_categories == ["name", "gender", "diagnosis/procedure", "identifier"]
    no_values(r, people, ext)


def test_chinese_text_labels(ext, people, real_matcher):
    lines = [f"姓名：{p.name_zh}　身份證號碼：{p.hkid}　電話：9123 4567" for p in people]
    r = scan(real_matcher, "貼文.txt", "\n".join(lines).encode())
    assert r.exposed_fields == ["姓名", "身份證號碼", "電話"]
    assert r.exposed_categories == ["name", "phone", "identifier"]
    no_values(r, people, ext)


def test_in_free_text_only_known_labels_are_kept(ext, people, real_matcher):
    """A name written where a label would be ("Chan Tai Man: A123456(3)") is not a field;
    a label after it on the same line is ("Chan Tai Man HKID: ...")."""
    lines = [f"{p.name}: {p.hkid}" for p in people[:6]]
    lines += [f"{p.name} HKID: {p.hkid}" for p in people[6:]]
    r = scan(real_matcher, "list.txt", "\n".join(lines).encode())
    assert r.matched_records == len(people)
    assert r.exposed_fields == ["HKID"]
    assert r.exposed_categories == ["identifier"]
    no_values(r, people, ext)


def test_sql_dump_with_column_names(ext, people, real_matcher):
    values = ",\n".join(f"({i}, '{p.name}', '{p.gender}', '{p.hkid}', '{p.hn}', "
                        f"'{p.procedure}')" for i, p in enumerate(people, 1))
    dump = ("-- MySQL dump\nDROP TABLE IF EXISTS `op_list`;\n"
            "INSERT INTO `op_list` (`id`, `patient_name`, `sex`, `hkid_no`, `hn`, "
            f"`procedure`) VALUES\n{values};\n")
    r = scan(real_matcher, "backup.sql", dump.encode())
    assert r.matched_records == len(people)
    assert r.exposed_fields == ["id", "patient_name", "sex", "hkid_no", "hn", "procedure"]
    assert r.exposed_categories == ["name", "gender", "diagnosis/procedure", "identifier"]
    no_values(r, people, ext)


def test_sql_dump_without_column_list_uses_create_table(ext, people, real_matcher):
    values = ",".join(f"({i},'{p.name}','1970-01-01','{p.hkid}','{p.procedure}')"
                      for i, p in enumerate(people, 1))
    dump = ("CREATE TABLE `pt` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n"
            "  `full_name` varchar(64) DEFAULT NULL,\n  `dob` date,\n"
            "  `id_card` varchar(12),\n  `diagnosis` text,\n  PRIMARY KEY (`id`),\n"
            "  KEY `k` (`id_card`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n"
            f"LOCK TABLES `pt` WRITE;\nINSERT INTO `pt` VALUES {values};\nUNLOCK TABLES;\n")
    r = scan(real_matcher, "pt.sql", dump.encode())
    assert r.exposed_fields == ["id", "full_name", "dob", "id_card", "diagnosis"]
    assert r.exposed_categories == ["name", "dob", "diagnosis/procedure", "identifier"]
    no_values(r, people, ext)


def test_postgres_copy(ext, people, real_matcher):
    rows = "".join(f"{i}\t{p.name}\t{p.hkid}\t{p.procedure}\n" for i, p in enumerate(people))
    dump = ("COPY public.patients (id, name, hkid, surgery) FROM stdin;\n" + rows + "\\.\n")
    r = scan(real_matcher, "pg.sql", dump.encode())
    assert r.exposed_fields == ["id", "name", "hkid", "surgery"]
    assert r.exposed_categories == ["name", "diagnosis/procedure", "identifier"]
    no_values(r, people, ext)


def test_json_keys_of_the_object(ext, people, real_matcher):
    doc = {"export": [{"patientName": p.name, "hkidNo": p.hkid, "hn": p.hn,
                       "dateOfBirth": "1970-01-01", "ward": "7"} for p in people]}
    r = scan(real_matcher, "api.json", json.dumps(doc).encode())
    assert r.exposed_fields == ["patientName", "hkidNo", "hn", "dateOfBirth", "ward"]
    assert r.exposed_categories == ["name", "dob", "identifier", "other"]
    no_values(r, people, ext)


def test_docx_table_header(ext, people, real_matcher):
    import docx

    d = docx.Document()
    d.add_paragraph("Theatre list")
    rows = ext.table(people)
    t = d.add_table(rows=0, cols=len(rows[0]))
    for row in rows:
        for cell, value in zip(t.add_row().cells, row, strict=True):
            cell.text = value
    d.save(buf := io.BytesIO())
    r = scan(real_matcher, "list.docx", buf.getvalue())
    assert r.exposed_fields == ["name", "gender", "hkid", "hospital_no", "procedure"]
    assert r.exposed_categories == ["name", "gender", "diagnosis/procedure", "identifier"]


def test_a_table_without_header_exposes_no_values(ext, people, real_matcher):
    """The first row is data (it holds identifiers): no header, so no labels at all."""
    rows = [[p.name, p.gender, p.hkid, p.hn, p.procedure] for p in people]
    r = scan(real_matcher, "raw.csv", _csv(rows))
    assert r.matched_records == len(people)
    assert r.exposed_fields == []
    assert r.exposed_categories == ["identifier"]


def test_labels_are_bounded(ext, people, real_matcher):
    """At most 64 labels of at most 64 characters: header cells are stranger-controlled."""
    names = [f"c{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(100)]
    head = ["HKID", "Name", "x" * 200, *names]
    rows = [head] + [[p.hkid, p.name, p.procedure] + ["v"] * 100 for p in people]
    r = scan(real_matcher, "wide.csv", _csv(rows))
    assert len(r.exposed_fields) == 64
    assert r.exposed_fields[:3] == ["HKID", "Name", "x" * 64]
    assert r.exposed_categories == ["name", "identifier", "other"]


def test_a_header_row_with_digits_is_data(ext, people, real_matcher):
    p0 = people[0]
    rows = [["HKID " + p0.hkid, "name"]] + [[p.hkid, p.name] for p in people[1:]]
    r = scan(real_matcher, "odd.csv", _csv(rows))
    assert r.exposed_fields == [] and r.exposed_categories == ["identifier"]


def test_identifiers_in_labels_are_masked(ext, people, real_matcher):
    """SQL column names are stranger-controlled too: an identifier-shaped name is masked,
    other digit runs starred."""
    p0 = people[0]
    values = ",".join(f"('{p.hkid}','{p.name}','x')" for p in people[1:])
    dump = (f'INSERT INTO t ("{p0.hkid}", "Phone 98765432", "ref {p0.hn}") VALUES '
            f"{values};\n")
    r = scan(real_matcher, "odd.sql", dump.encode())
    assert len(r.exposed_fields) == 3 and all("*" in f for f in r.exposed_fields)
    assert r.exposed_fields[1] == "Phone ********"
    ext.no_identifiers(json.dumps(r.exposed_fields), people)


def test_configured_synonyms_extend_the_built_in_list(ext, people, tmp_path):
    """[matching.categories] adds labels; an exact label wins over the keyword rules."""
    from leaksentry.synth import register_rows
    from pipelines.match import build_fingerprints, generate_key, read_key

    with (tmp_path / "register.csv").open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(register_rows(20, seed=3))
    generate_key(tmp_path / "key")
    build_fingerprints(tmp_path / "register.csv", read_key(tmp_path / "key"), tmp_path / "fp",
                       hkid_column="hkid", hn_column="hn", ref_column="ref")
    cfg = MatchingConfig.model_validate({"categories": {
        "diagnosis/procedure": ["Op Code"], "name": ["Nom"], "other": ["Doctor Name"]}})
    m = Matcher.load(tmp_path / "key", tmp_path / "fp", cfg)
    rows = [["Nom", "HKID", "Op Code", "Doctor Name"]] + [
        [p.name, p.hkid, p.procedure, "Dr Who"] for p in people]
    r = scan(m, "fr.csv", _csv(rows))
    assert r.exposed_fields == ["Nom", "HKID", "Op Code", "Doctor Name"]
    assert r.exposed_categories == ["name", "diagnosis/procedure", "identifier", "other"]
    # without the additions: "Nom" and "Op Code" are other, "Doctor Name" a name
    m = Matcher.load(tmp_path / "key", tmp_path / "fp")
    assert scan(m, "fr.csv", _csv(rows)).exposed_categories == ["name", "identifier", "other"]


def test_text_tables_in_pastes_and_pdf_pages(ext, people, real_matcher):
    """A Markdown or fixed-width table in a paste, a table drawn on a PDF page: the header
    line above the rows (its synonyms only: this is free text)."""
    md = ["| Patient Name | HKID | Hospital No | Ward | Procedure |",
          "|---|---|---|---|---|"]
    md += [f"| {p.name} | {p.hkid} | {p.hn} | 7 | {p.procedure} |" for p in people]
    r = scan(real_matcher, "paste.md", ("leak\n" + "\n".join(md)).encode())
    assert r.exposed_fields == ["Patient Name", "HKID", "Hospital No", "Ward", "Procedure"]
    assert r.exposed_categories == ["name", "diagnosis/procedure", "identifier", "other"]
    no_values(r, people, ext)

    fixed = ["NAME                  SEX  HKID          PROCEDURE"]
    fixed += [f"{p.name:<22}{p.gender:<5}{p.hkid:<14}{p.procedure}" for p in people]
    r = scan(real_matcher, "fixed.txt", "\n".join(fixed).encode())
    assert r.exposed_fields == ["NAME", "SEX", "HKID", "PROCEDURE"]
    no_values(r, people, ext)

    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    y = 800
    for row in [["Name", "Gender", "HKID", "Hospital No"]] + [
            [p.name, p.gender, p.hkid, p.hn] for p in people]:
        for i, cell in enumerate(row):
            c.drawString(30 + 140 * i, y, cell)
        y -= 18
    c.save()
    r = scan(real_matcher, "list.pdf", buf.getvalue())
    assert r.matched_records == len(people)
    assert r.exposed_fields == ["Name", "Gender", "HKID", "Hospital No"]
    assert r.exposed_categories == ["name", "gender", "identifier"]
    no_values(r, people, ext)


@pytest.mark.parametrize(("rows", "headers"), [
    # a header row: every row gets it
    ([["Name", "HKID"], ["x", "A1234563"]], [("Name", "HKID")] * 2),
    # a title above the header: replaced by the header
    ([["Export"], ["Name", "HKID", ""], ["x", "A1234563"]],
     [("Export",), ("Name", "HKID"), ("Name", "HKID")]),
    # a one-column table: its one label stays
    ([["HKID"], ["A1234563"], ["B1234567"]], [("HKID",)] * 3),
    # a title above data: no header
    ([["Export"], ["x", "A1234563"]], [("Export",), None]),
    # data first (four digits in a row): no header at all
    ([["x", "A1234563"], ["Name", "HKID"]], [None, None]),
    # labels: one line each, at most 64 of at most 64 characters
    ([["a\nb", "c" * 100] + ["d"] * 100], [("a b", "c" * 64, *["d"] * 62)]),
])
def test_table_header(rows, headers):
    from pipelines.extract.text import TableHeader

    head = TableHeader()
    got = [head.header if head.done else head.see(r) for r in rows]
    assert got == headers
