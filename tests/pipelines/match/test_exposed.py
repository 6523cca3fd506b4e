"""Labels -> categories (the synonym lists and keyword rules), labels in free text, SQL
column lists, and the [matching.categories] config section."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from leaksentry.config import Settings
from pipelines.match.exposed import Categories, normalise, sql_columns, text_labels


@pytest.fixture(scope="module")
def cats() -> Categories:
    return Categories()


@pytest.mark.parametrize(("label", "category"), [
    ("Patient Name", "name"), ("NAME (ENGLISH)", "name"), ("patientName", "name"),
    ("姓名", "name"), ("病人姓名", "name"), ("英文姓名", "name"), ("中文姓名", "name"),
    ("Sex", "gender"), ("Gender", "gender"), ("性別", "gender"), ("性别", "gender"),
    ("D.O.B.", "dob"), ("Date of Birth", "dob"), ("出生日期", "dob"), ("年齡", "dob"),
    ("Home Address", "address"), ("address_line_2", "address"), ("地址", "address"),
    ("Tel No.", "phone"), ("Mobile", "phone"), ("電話", "phone"), ("电话", "phone"),
    ("聯絡電話", "phone"),
    ("Procedure", "diagnosis/procedure"), ("Surgical procedure", "diagnosis/procedure"),
    ("ICD-10", "diagnosis/procedure"), ("手術", "diagnosis/procedure"),
    ("手术", "diagnosis/procedure"), ("診斷", "diagnosis/procedure"),
    ("诊断", "diagnosis/procedure"), ("手術名稱", "diagnosis/procedure"),
    ("HKID", "identifier"), ("HKID No.", "identifier"), ("hkid_no", "identifier"),
    ("Hospital No", "identifier"), ("HN", "identifier"), ("身份證號碼", "identifier"),
    ("身份证号码", "identifier"), ("病人編號", "identifier"), ("病人编号", "identifier"),
    ("Patient ID", "identifier"), ("Case Ref", "identifier"),
    ("Hospital Name", "other"), ("Ward", "other"), ("Remarks", "other"), ("備註", "other"),
    ("Favourite colour", "other"), ("", "other"),
])
def test_categories(cats, label, category):
    assert cats.category(label) == category


def test_normalise():
    assert normalise("  Patient_Name ") == "patient name"
    assert normalise("hkidNo") == "hkid no"
    assert normalise("Ｎａｍｅ：") == "name"  # full-width, then the colon is punctuation
    assert normalise("D.O.B.") == "d o b"


def test_additions_extend_and_override(cats):
    custom = Categories({"name": ["Nom"], "other": ["Doctor Name"], "identifier": ["NRIC"]})
    assert custom.category("nom") == "name" and cats.category("nom") == "other"
    assert custom.category("Doctor Name") == "other" and cats.category("Doctor Name") == "name"
    assert custom.category("NRIC") == "identifier"
    assert custom.category("Patient Name") == "name"  # the built-ins stay
    with pytest.raises(ValueError, match="unknown category"):
        Categories({"salary": ["Pay"]})


def test_known_takes_the_synonym_ending_only(cats):
    assert cats.known("Name") == ("Name", "name")
    assert cats.known("Chan Tai Man HKID") == ("HKID", "identifier")
    assert cats.known("Chan Tai Man") is None
    assert cats.known("陳大文身份證號碼") == ("身份證號碼", "identifier")
    assert cats.known("患者姓名") == ("患者姓名", "name")
    assert cats.known("") is None


def test_text_labels(cats):
    text = ("Name: Chan Tai Man, Sex: M\n"
            "see https://example.org/x?hkid=A1234563 at 10:30\n"
            '{"hospital_no": "HN12345678", "chan tai man": "x"}\n'
            "姓名：陳大文　電話：91234567\n")
    got = text_labels(text, cats)
    assert got == [("Name", "name"), ("Sex", "gender"), ("hkid", "identifier"),
                   ("hospital_no", "identifier"), ("姓名", "name"), ("電話", "phone")]


def test_sql_columns():
    head = b"-- dump\nINSERT INTO `db`.`patients` (`id`, name, \"HKID\", [hn]) VALUES\n(1, '"
    buf = head + b"x', 'A1234563', 'HN1')"
    assert sql_columns(buf, 0, len(head)) == ("id", "name", "HKID", "hn")
    assert sql_columns(b"please insert the card into the reader 'A1234563'", 0, 40) is None
    copy = b"COPY public.t (a, b) FROM stdin;\n1\tA1234563\n"
    assert sql_columns(copy, 0, copy.index(b"A1")) == ("a", "b")
    create = (b"CREATE TABLE IF NOT EXISTS \"t\" (\n  \"a\" numeric(10,2),\n  \"b\" text,\n"
              b"  CONSTRAINT pk PRIMARY KEY (a)\n);\nINSERT INTO \"t\" VALUES (1, '")
    assert sql_columns(create, 0, len(create)) == ("a", "b")


def test_config_section():
    s = Settings.model_validate({"matching": {"categories": {
        "name": ["Nom", "  Nom  de  famille "], "diagnosis/procedure": ["Op Code"]}}})
    add = s.matching.categories.additions()
    assert add["name"] == ["Nom", "Nom de famille"]
    assert add["diagnosis/procedure"] == ["Op Code"]
    assert set(add) == {"name", "gender", "dob", "address", "phone", "diagnosis/procedure",
                        "identifier", "other"}
    for bad, where in [({"salary": ["Pay"]}, "salary"), ({"name": [""]}, "name"),
                       ({"name": ["x" * 65]}, "name"), ({"name": "Nom"}, "name")]:
        with pytest.raises(ValidationError, match=where):
            Settings.model_validate({"matching": {"categories": bad}})
