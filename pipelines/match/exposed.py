"""What a hit exposed: the labels of the fields around its identifiers, and their categories.

A hit says *what* was exposed, never what the document said: ``exposed_fields`` are labels
("Patient Name", "HKID", "Procedure") and ``exposed_categories`` their categories
(:data:`~leaksentry.config.matching.CATEGORIES`: name, gender, dob, address, phone,
diagnosis/procedure, identifier, other). Labels come from:

- tables: the header row the extractor found (``TextPart.header``, one tuple per table):
  the labels of the columns that are non-empty in rows holding identifiers. Checked per
  table until every column was seen filled (usually the first such row), at most
  :data:`TABLE_ROWS` rows a table: no per-row work once a table is known;
- SQL dumps: the column list of the ``INSERT INTO t (...)`` / ``COPY t (...)`` statement
  before quoted or tab-separated identifiers (or of its ``CREATE TABLE``);
- other text (pastes, JSON objects, e-mails, PDF pages): ``Label:``, ``Label：``,
  ``"key":``, ``key=`` next to identifiers, or the header line of a Markdown / fixed-width
  table above an identifier's row, in at most :data:`TEXT_SAMPLES` places a document. In
  free text a "label" may be a person's name ("Chan Tai Man: A123456(3)"), so there only
  labels in the synonym list are kept, and only the synonym part ("… HKID:" gives "HKID").

Table and SQL labels are stranger-controlled: bounded (:data:`MAX_FIELDS` labels of at most
:data:`MAX_LABEL` characters), with every identifier-shaped token masked and digit runs
starred before they are stored. Cell values are never read into a result.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from itertools import pairwise
from typing import Literal

import numpy as np

from leaksentry.config.matching import CATEGORIES
from pipelines.model import CELL_SEP

MAX_FIELDS = 64
MAX_LABEL = 64
#: places in free text a document where labels are looked for (the first ones, apart);
#: after this many places in a row with no label, the document is taken to have none
TEXT_SAMPLES = 8
TEXT_MISSES = 3
#: rows of one table looked at for their non-empty columns (usually one is enough)
TABLE_ROWS = 2048
#: tables of one document whose labels are collected (an archive may hold thousands)
MAX_TABLES = 256
_AROUND = 256  # bytes either side of an identifier searched for labels
_SQL_BACK = 64 * 1024  # bytes before an identifier searched for its INSERT/COPY statement
_CELL = CELL_SEP.encode()

# --- the built-in synonyms ------------------------------------------------------------------

BUILTIN: dict[str, tuple[str, ...]] = {
    "name": (
        "name", "names", "patient name", "patient full name", "full name", "english name",
        "chinese name", "name in english", "name in chinese", "surname", "given name",
        "given names", "first name", "last name", "family name", "other names", "alias",
        "姓名", "病人姓名", "患者姓名", "名字", "英文姓名", "中文姓名", "英文名", "中文名",
        "姓", "名", "全名", "姓氏",
    ),
    "gender": ("gender", "sex", "m/f", "性別", "性别"),
    "dob": (
        "dob", "d.o.b.", "date of birth", "birth date", "birthdate", "birthday",
        "year of birth", "age", "出生日期", "出生年月日", "出生年份", "生日", "年齡", "年龄",
    ),
    "address": (
        "address", "home address", "residential address", "correspondence address", "addr",
        "district", "地址", "住址", "住宅地址", "通訊地址", "通讯地址", "居住地址", "地區", "地区",
    ),
    "phone": (
        "phone", "phone no", "phone number", "telephone", "telephone no", "tel", "tel no",
        "mobile", "mobile no", "mobile number", "contact no", "contact number", "contact",
        "電話", "电话", "電話號碼", "电话号码", "手機", "手机", "聯絡電話", "联系电话",
        "聯絡電話號碼", "手提電話",
    ),
    "diagnosis/procedure": (
        "diagnosis", "diagnoses", "procedure", "procedures", "operation", "surgery",
        "surgical procedure", "procedure name", "operation name", "treatment", "condition",
        "icd", "icd10", "icd 10", "icd code", "診斷", "诊断", "手術", "手术", "手術名稱",
        "手术名称", "手術程序", "治療", "治疗", "病症", "疾病", "病情",
    ),
    "identifier": (
        "hkid", "hkid no", "hkid number", "hk id", "hk id no", "hkic", "hkic no", "id card",
        "id card no", "identity card", "identity card no", "identity card number", "id",
        "id no", "id number", "hn", "hn no", "hospital no", "hospital number",
        "hospital file no", "hospital file number", "mrn", "patient id", "patient no",
        "patient number", "case no", "case number", "身份證", "身份證號碼", "身份證號", "身份证",
        "身份证号码", "身份证号", "身分證", "身分證號碼", "香港身份證", "香港身份證號碼",
        "病人編號", "病人编号", "病歷號", "病历号", "病歷編號", "醫院編號", "医院编号",
        "住院號", "住院号",
    ),
    "other": (
        "hospital", "hospital name", "ward", "bed", "bed no", "department", "specialty",
        "remark", "remarks", "note", "notes", "email", "e-mail", "電郵", "电邮", "醫院", "医院",
        "病房", "備註", "备注",
    ),
}

#: when no synonym matches a table or SQL label exactly: the first rule with a keyword in it
#: (a whole word for Latin keywords, a substring for Chinese ones) gives the category
KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("identifier", ("hkid", "hkic", "identity", "mrn", "passport", "身份證", "身份证", "身分證",
                    "證件", "证件")),
    ("phone", ("phone", "telephone", "tel", "mobile", "fax", "contact", "電話", "电话", "手機",
               "手机", "聯絡", "联系")),
    ("dob", ("dob", "birth", "birthday", "birthdate", "age", "出生", "生日", "年齡", "年龄")),
    ("gender", ("gender", "sex", "性別", "性别")),
    ("address", ("address", "addr", "street", "district", "地址", "住址", "地區", "地区")),
    ("diagnosis/procedure", ("diagnosis", "procedure", "operation", "surgery", "surgical",
                             "treatment", "condition", "disease", "icd", "診斷", "诊断", "手術",
                             "手术", "治療", "治疗", "病症", "疾病", "病情")),
    ("name", ("name", "surname", "forename", "姓名", "名字", "姓氏")),
    ("identifier", ("id", "hn", "no", "number", "num", "ref", "編號", "编号", "號碼", "号码")),
)

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_PUNCT = re.compile(r"[\s_\-./#:()\[\]{}'\"`*<>|]+")
_TRAILING_DIGITS = re.compile(r"\d+$")


def normalise(label: str) -> str:
    """How labels are compared: NFKC, camelCase split, case-folded, punctuation as spaces."""
    s = _CAMEL.sub(" ", unicodedata.normalize("NFKC", label)).casefold()
    return " ".join(_PUNCT.sub(" ", s).split())


class Categories:
    """Label -> category: exact synonyms (built in, then the configured additions, which
    win), then the keyword rules, else ``other``."""

    def __init__(self, additions: Mapping[str, Sequence[str]] | None = None) -> None:
        exact: dict[str, str] = {}
        for source in (BUILTIN, additions or {}):
            for cat, labels in source.items():
                if cat not in CATEGORIES:
                    raise ValueError(f"unknown category {cat!r}")
                for label in labels:
                    n = normalise(label)
                    if n:
                        exact[n] = cat
        self._exact = exact
        self._words = max((len(k.split()) for k in exact), default=1)
        self._latin = [(c, frozenset(k for k in kw if k.isascii())) for c, kw in KEYWORDS]
        self._cjk = [(c, tuple(k for k in kw if not k.isascii())) for c, kw in KEYWORDS]

    def category(self, label: str) -> str:
        n = normalise(label)
        cat = self._exact.get(n)
        if cat is not None:
            return cat
        words = {_TRAILING_DIGITS.sub("", w) for w in n.split()}
        for (c, latin), (_, cjk) in zip(self._latin, self._cjk, strict=True):
            if words & latin or any(k in n for k in cjk):
                return c
        return "other"

    def exact(self, label: str) -> str | None:
        """The category of a label that is a synonym (built in or configured), else None."""
        return self._exact.get(normalise(label))

    def known(self, text: str) -> tuple[str, str] | None:
        """(label, category) for the longest ending of ``text`` (what precedes a colon in
        free text) that is a synonym, e.g. "Chan Tai Man HKID" -> ("HKID", "identifier");
        None when no ending is one."""
        words = text.split()
        if not words:
            return None
        for k in range(min(len(words), self._words), 0, -1):
            tail = " ".join(words[-k:])
            cat = self._exact.get(normalise(tail))
            if cat is not None:
                return tail, cat
        last = words[-1]
        if not last.isascii():  # Chinese has no spaces: "陳大文身份證號碼"
            for k in range(min(len(last), 12), 0, -1):
                cat = self._exact.get(normalise(last[-k:]))
                if cat is not None:
                    return last[-k:], cat
        return None


# --- labels in text -------------------------------------------------------------------------

_COLON = re.compile(r"[:：=]")
_LABEL_STOP = set("\n\r,;|\t{}[]<>\"'/?&，；、" + CELL_SEP)
_LABEL_CHARS = 48


def text_labels(text: str, categories: Categories) -> list[tuple[str, str]]:
    """(label, category) of every ``Label:`` in ``text`` whose label is a known synonym."""
    out = []
    for m in _COLON.finditer(text):
        i = m.start()
        if text.startswith("//", i + 1):
            continue  # a URL scheme
        lo = max(0, i - _LABEL_CHARS)
        while i > lo and text[i - 1] in " \t":
            i -= 1
        if i > lo and text[i - 1] in "\"'":  # a quoted key: "hospital_no": ...
            j = text.rfind(text[i - 1], lo, i - 1)
            if j < 0:
                continue
            cand = text[j + 1:i - 1].strip()
        else:
            j = i
            while j > lo and text[j - 1] not in _LABEL_STOP:
                j -= 1
            cand = text[j:i].strip(" \t`*-")
        if cand and cand[0].isalpha():
            hit = categories.known(cand)
            if hit is not None:
                out.append(hit)
    return out


_GAP = re.compile(r"\t|\s*\|\s*|\s{2,}")
_DIGITS4 = re.compile(r"\d{4}")
_HEADER_LINES = 8  # lines above an identifier's row searched for a text table's header


def header_above(buf: bytes, lo: int, at: int, categories: Categories) -> list[tuple[str, str]]:
    """The labels of a text table's header line above the row holding ``at`` (a fixed-width
    or Markdown table in a paste, a PDF page's table): the nearest of the
    :data:`_HEADER_LINES` lines above whose cells (split on tabs, ``|`` or two spaces) hold
    at least two synonyms and no four digits in a row. Only the synonyms are returned
    (free text); [] when there is no such line."""
    end = buf.rfind(b"\n", lo, at)
    for _ in range(_HEADER_LINES):
        if end <= lo:
            return []
        start = max(buf.rfind(b"\n", max(lo, end - 1024), end) + 1, lo, end - 1024)
        line = buf[start:end].decode("utf-8", "ignore")
        end = start - 1
        if _DIGITS4.search(line):
            continue
        cells = [c.strip(" -=:*#") for c in _GAP.split(line.strip(" |\r"))]
        known = [(c, cat) for c in cells if c and (cat := categories.exact(c)) is not None]
        if len(known) >= 2:
            return known
    return []


# --- SQL ------------------------------------------------------------------------------------

_NAME = rb"(?:[`\"\[]?[\w$]+[`\"\]]?\.){0,2}[`\"\[]?[\w$]+[`\"\]]?"
_SQL_HEAD = re.compile(
    rb"(?i)(?:insert(?:\s+ignore)?\s+into|replace\s+into|copy)\s+(" + _NAME + rb")\s*"
    rb"(?:\(([^()]{1,8192})\))?\s*(?:values|from\s|select|\()")
_SQL_WORDS = (b"insert", b"replace", b"copy")
_CREATE = re.compile(rb"(?i)create\s+(?:temporary\s+)?table\s+(?:if\s+not\s+exists\s+)?("
                     + _NAME + rb")\s*\(")
_NOT_COLUMNS = {b"PRIMARY", b"KEY", b"UNIQUE", b"CONSTRAINT", b"INDEX", b"FOREIGN", b"CHECK",
                b"FULLTEXT", b"SPATIAL", b"EXCLUDE", b"LIKE", b"PERIOD"}


def _bare(name: bytes) -> str:
    """A SQL name without quotes or schema: ```public`.`patients``` -> "patients"."""
    return name.rsplit(b".", 1)[-1].strip(b"`\"[] ").decode("utf-8", "replace")


def _columns(listed: bytes) -> tuple[str, ...]:
    cols = (c.strip().strip(b"`\"[]").strip() for c in listed.split(b",", MAX_FIELDS)[:MAX_FIELDS])
    return tuple(c.decode("utf-8", "replace")[:MAX_LABEL] for c in cols)


def _created_columns(buf: bytes, lo: int, at: int, table: str) -> tuple[str, ...] | None:
    """The columns of ``CREATE TABLE <table> (...)`` before ``at`` (mysqldump writes its
    INSERTs without a column list)."""
    seg = buf[max(lo, at - _SQL_BACK):at]
    low = seg.lower()
    end = len(low)
    for _ in range(8):
        k = low.rfind(b"create", 0, end)
        if k < 0:
            return None
        m = _CREATE.match(seg, k)
        end = k
        if m is None or _bare(m.group(1)) != table:
            continue
        cols: list[str] = []
        depth, start, pos = 0, m.end(), m.end()
        stop = min(len(seg), pos + 16384)
        while pos < stop and len(cols) < MAX_FIELDS:
            ch = seg[pos]
            if ch == 0x28:  # (
                depth += 1
            elif ch == 0x29 or (ch == 0x2C and depth == 0):  # ) or ,
                if ch == 0x29 and depth:
                    depth -= 1
                else:
                    first = seg[start:pos].split(None, 1)
                    if first and first[0].strip(b"`\"[]").upper() not in _NOT_COLUMNS:
                        cols.append(first[0].strip(b"`\"[]").decode("utf-8", "replace")
                                    [:MAX_LABEL])
                    if ch == 0x29:
                        break
                    start = pos + 1
            pos += 1
        return tuple(cols) or None
    return None


def sql_columns(buf: bytes, lo: int, at: int) -> tuple[str, ...] | None:
    """The column names of the last INSERT/COPY statement that starts in ``buf[lo:at]``
    (at most 64 KB back), or None."""
    start = max(lo, at - _SQL_BACK)
    seg = buf[start:at]
    low = seg.lower()
    ends = [len(low)] * len(_SQL_WORDS)
    for _ in range(8):  # a few words that are not a statement ("insert the card")
        found = [low.rfind(w, 0, e) for w, e in zip(_SQL_WORDS, ends, strict=True)]
        k = max(found)
        if k < 0:
            return None
        ends[found.index(k)] = k
        m = _SQL_HEAD.match(seg, k)
        if m is None:
            continue
        if m.group(2) is not None:
            return _columns(m.group(2))
        return _created_columns(buf, lo, start + k, _bare(m.group(1)))
    return None


# --- one document's exposure ----------------------------------------------------------------


class _Table:
    __slots__ = ("header", "missing", "original", "rows", "unlabelled")

    def __init__(self, header: tuple[str, ...]) -> None:
        self.original = header  # kept: the exposure is keyed on its id()
        self.header = header = header[:MAX_FIELDS]
        self.missing = list(range(len(header)))  # columns not yet seen filled in a hit row
        self.rows = 0
        self.unlabelled = False  # a filled column with no label (or beyond the header)

    def seen(self) -> list[int]:
        gone = set(self.missing)
        return [j for j in range(len(self.header)) if j not in gone]


Redactor = Callable[[list[str]], list[str]]
Runs = list[tuple[int, tuple[str, ...] | None]]  # (first part of a batch, its header)


class Exposure:
    """Collects, while one document is scanned, the labels around its identifiers.

    The scanner calls :meth:`add_batch` with the valid identifiers of each batch and
    :meth:`result` at the end. ``redact`` makes stranger-controlled labels safe to store.
    """

    def __init__(self, categories: Categories, redact: Redactor) -> None:
        self.categories = categories
        self.redact = redact
        self._tables: dict[int, _Table] = {}
        # in discovery order: ("table", _Table), ("sql", column names), ("text", (label, cat))
        self._groups: list[tuple[Literal["table"], _Table]
                           | tuple[Literal["sql"], tuple[str, ...]]
                           | tuple[Literal["text"], tuple[str, str | None]]] = []
        self._text: set[str] = set()
        self._sql: set[tuple[str, ...]] = set()
        self._samples = TEXT_SAMPLES
        self._misses = 0
        self._sql_last: tuple[str, ...] | None = None

    @property
    def sampling(self) -> bool:
        """Text places are still looked at (fewer than :data:`TEXT_SAMPLES` so far)."""
        return self._samples > 0

    @property
    def untouched(self) -> bool:
        """Nothing was looked at: no table, no text place (what the scan of a text's second
        half must show for its labels to be left out of the whole's, see
        :meth:`pipelines.match.scanner.Matcher.merge`)."""
        return not self._groups and not self._tables and self._samples == TEXT_SAMPLES

    @property
    def has_tables(self) -> bool:
        return bool(self._tables)

    def add_batch(self, buf: bytes, starts: list[int], runs: Runs, n_parts: int,
                  part_of: np.ndarray, vs: np.ndarray, ve: np.ndarray) -> None:
        """``runs``: where the header changes among the batch's parts; ``part_of``, ``vs``,
        ``ve``: part, start and end of each valid identifier (ascending)."""
        if len(runs) == 1:  # one table, or text only: the common case
            bounds = [(0, len(part_of))]
        else:
            firsts = np.asarray([first for first, _ in runs] + [n_parts])
            at = np.searchsorted(part_of, firsts).tolist()
            bounds = list(pairwise(at))
        for (_, header), (lo, hi) in zip(runs, bounds, strict=True):
            if lo == hi:
                continue
            if header:
                self._table(buf, starts, header, part_of[lo:hi])
            elif self._samples > 0:
                self._text_places(buf, starts, part_of[lo:hi], vs[lo:hi], ve[lo:hi])

    def _table(self, buf: bytes, starts: list[int], header: tuple[str, ...],
               parts: np.ndarray) -> None:
        t = self._tables.get(id(header))
        if t is None:
            if len(self._tables) >= MAX_TABLES:  # an archive of many small tables
                return
            t = self._tables[id(header)] = _Table(header)
            self._groups.append(("table", t))
        if not t.missing or t.rows >= TABLE_ROWS:
            return
        rows = parts[np.flatnonzero(np.diff(parts, prepend=-1))].tolist()  # distinct parts
        header = t.header
        width = len(header)
        for pi in rows[:TABLE_ROWS - t.rows]:
            t.rows += 1
            cells = buf[starts[pi]:starts[pi + 1] - 1].split(_CELL)
            filled = [j for j in t.missing if j < len(cells) and cells[j].strip()]
            if filled:
                t.missing = [j for j in t.missing if j not in filled]
                if not t.unlabelled and any(not header[j] for j in filled):
                    t.unlabelled = True
            if not t.unlabelled and len(cells) > width and any(c.strip() for c in cells[width:]):
                t.unlabelled = True
            if not t.missing:
                break

    def _text_places(self, buf: bytes, starts: list[int], parts: np.ndarray, vs: np.ndarray,
                     ve: np.ndarray) -> None:
        """Labels around the first identifiers of text parts, :data:`TEXT_SAMPLES` places a
        document, each place past the last one looked at (plain prose: only the first
        :data:`TEXT_MISSES`)."""
        after = -1
        chunk = 2 * TEXT_SAMPLES  # places are usually apart: look at a few at a time
        for c in range(0, len(parts), chunk):
            for pi, s, e in zip(parts[c:c + chunk].tolist(), vs[c:c + chunk].tolist(),
                                ve[c:c + chunk].tolist(), strict=True):
                if s >= after:
                    after = self._text_place(buf, starts[pi], starts[pi + 1] - 1, s, e)
                    if self._samples <= 0:
                        return

    def _text_place(self, buf: bytes, lo: int, hi: int, s: int, e: int) -> int:
        """Labels around the identifier at ``buf[s:e]`` of the part ``buf[lo:hi]``; returns
        the end of the window looked at."""
        self._samples -= 1
        a = s - _AROUND if s - _AROUND > lo else lo
        b = e + _AROUND if e + _AROUND < hi else hi
        find = buf.find
        labels: list[tuple[str, str]] = []
        # ":", "=" or the last byte of "：" (one-byte searches are memchr-fast)
        if find(b":", a, b) >= 0 or find(b"=", a, b) >= 0 or find(b"\x9a", a, b) >= 0:
            labels = text_labels(buf[a:b].decode("utf-8", "ignore"), self.categories)
        found = bool(labels)
        pre, post = buf[s - 2:s], buf[e:e + 2]
        if (buf[s - 1] in b"'\"" and buf[e] in b"'\"") or buf[s - 1] == 9 or buf[e] == 9:
            # a SQL VALUES tuple or COPY row
            cols = sql_columns(buf, lo, s) or self._sql_last
            if cols:
                found = True
                self._sql_last = cols
                if cols not in self._sql:
                    self._sql.add(cols)
                    self._groups.append(("sql", cols))
        if not found and ((pre == b"  " and post == b"  ") or (b"|" in pre and b"|" in post)
                          or b"\t" in pre or b"\t" in post):  # a row of a text table
            labels = header_above(buf, lo, s, self.categories)
            found = bool(labels)
        for label, cat in labels:
            key = normalise(label)
            if key not in self._text:
                self._text.add(key)
                self._groups.append(("text", (label, cat)))
        if found:
            self._misses = 0
        else:
            self._misses += 1
            if self._misses >= TEXT_MISSES:
                self._samples = 0
        return b

    def result(self, identifiers: bool) -> tuple[list[str], list[str]]:
        """(exposed fields, exposed categories); ``identifiers``: some were found."""
        found: list[tuple[str, str | None]] = []  # (label, its category if already known)
        other = False
        for group in self._groups:
            if group[0] == "table":
                g = group[1]
                other = other or g.unlabelled
                found.extend((g.header[j], None) for j in g.seen() if g.header[j])
            elif group[0] == "sql":
                found.extend((c, None) for c in group[1] if c)
            else:
                found.append(group[1])
        # distinct labels only, a bounded number (many tables repeat the same few labels)
        raw: list[tuple[str, str | None]] = []
        distinct: set[str] = set()
        for label, cat in found:
            key = normalise(label)
            if key not in distinct:
                distinct.add(key)
                raw.append((label, cat))
                if len(raw) >= 2 * MAX_FIELDS:
                    break
        fields: list[str] = []
        cats: set[str] = {"identifier"} if identifiers else set()
        seen: set[str] = set()
        labels = self.redact([label for label, _ in raw])
        for (orig, cat), label in zip(raw, labels, strict=True):
            key = normalise(label)
            if not key or key in seen:
                continue
            seen.add(key)
            cats.add(cat or self.categories.category(orig))
            fields.append(label)
            if len(fields) >= MAX_FIELDS:
                break
        if other:
            cats.add("other")
        return fields, [c for c in CATEGORIES if c in cats]
