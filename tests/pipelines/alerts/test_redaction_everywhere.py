"""One redaction policy for every output (issue 14; issue 20 items 6-7), end to end.

Through the real CLI and real servers: osmem-server (Elasticsearch API), Python's
http.server (an open directory crawled by a real ``leaksentry crawl``), the webhook,
Slack/Teams, SMTP (aiosmtpd, STARTTLS) and syslog receivers of this directory's conftest.

* the three regression cases of issue 14: a hospital number in a file name, percent-
  encoded identifiers in a URL, patient names kept in context snippets;
* the property test over every sink at once: hypothesis plants identifiers of every kind
  (HKID, hospital number, a configured custom kind), in register and not, in written and
  encoded forms, in file and directory names, URLs (path, query, userinfo), archive member
  names, table headers, JSON keys, error messages and content, next to register names;
  one run (es setup, scan --index, a crawl, alerts to every channel, logs at DEBUG) and
  a search of every byte written anywhere finds none of them. Few examples: each is a
  full pipeline run.
"""

from __future__ import annotations

import csv
import functools
import http.server
import io
import json
import logging
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_plus

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from leaksentry import synth
from leaksentry.config import load_config
from leaksentry.config.matching import KindConfig, MatchingConfig
from leaksentry.config.toml import dumps
from leaksentry.identifiers.checksums import luhn_ok
from leaksentry.redaction import mask
from leaksentry.store import Store
from pipelines.alerts.worker import deliver_pending
from pipelines.match import build_fingerprints, generate_key, read_key

MRN = KindConfig(name="mrn", pattern=r"MRN-?\d{7}", checksum="luhn", column="mrn")
PATIENTS = list(synth.patients(60, seed=1414))


def mrn_of(i: int) -> str:
    n = 1_000_000 + i * 7919
    while not luhn_ok(f"MRN{n}"):
        n += 1
    return f"MRN{n}"


def cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "leaksentry", *args], capture_output=True,
                          timeout=240, env=env, cwd=cwd)


class DirServer:
    """Python's own http.server over a directory (an open-directory listing)."""

    def __init__(self, root: Path) -> None:
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Workspace:
    """Key, register (hkid, hn, mrn columns), fingerprints, a config with Elasticsearch,
    every alert channel and DEBUG logs."""

    def __init__(self, root: Path, es_url: str, channels: list[dict[str, Any]],
                 sources: list[dict[str, Any]] | None = None, **extra: Any) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        generate_key(root / "key")
        with open(root / "register.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["ref", "name", "hkid", "hn", "mrn"])
            for i, p in enumerate(PATIENTS):
                w.writerow([p.ref, p.name, p.hkid, p.hn, mrn_of(i)])
        build_fingerprints(root / "register.csv", read_key(root / "key"), root / "fp",
                           hkid_column="hkid", hn_column="hn", ref_column="ref",
                           config=MatchingConfig(kinds=[MRN]))
        (root / "register.csv").unlink()  # the register never reaches the crawler side
        data: dict[str, Any] = {
            "state": {"dir": str(root / "state")},
            "matching": {"key": str(root / "key"), "fingerprints": str(root / "fp"),
                         "kinds": [MRN.model_dump(exclude_none=True)]},
            "elasticsearch": {"url": es_url, "backend": "opensearch", "timeout": "5s"},
            "alerts": {"channels": channels},
            "daemon": {"log_level": "DEBUG"},
            **extra,
        }
        if sources:
            data["sources"] = sources
        self.config = root / "leaksentry.toml"
        self.config.write_text(dumps(data), encoding="utf-8")
        self.env = dict(os.environ, LEAKSENTRY_HOME=str(root / "state"),
                        HOME=str(root / "home"), LEAKSENTRY_SMTP_PASSWORD="smtp-pass",
                        PYTHONUNBUFFERED="1")
        self.env.pop("LEAKSENTRY_CONFIG", None)
        self.outputs: list[bytes] = []

    def run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        r = cli(*args, "--config", str(self.config), env=self.env, cwd=self.root)
        self.outputs += [r.stdout, r.stderr]
        return r

    def scan(self, *paths: Path) -> subprocess.CompletedProcess[bytes]:
        r = cli("scan", "--config", str(self.config), "--index", "--json",
                *map(str, paths), env=self.env, cwd=self.root)
        self.outputs += [r.stdout, r.stderr]
        return r

    def state_bytes(self) -> list[bytes]:
        """Every file of the state dir (state.db, its WAL and shm), and every table read
        back through SQLite."""
        out: list[bytes] = []
        for p in sorted((self.root / "state").rglob("*")):
            if p.is_file():
                out.append(p.read_bytes())
        con = sqlite3.connect(self.root / "state" / "state.db")
        for (table,) in con.execute("select name from sqlite_master where type='table'"):
            out.append(repr(con.execute(f'select * from "{table}"').fetchall()).encode())
        con.close()
        return out

    def query(self, sql: str) -> list[tuple]:
        con = sqlite3.connect(self.root / "state" / "state.db")
        try:
            return list(con.execute(sql))
        finally:
            con.close()


def es_docs(osmem: Any) -> list[dict[str, Any]]:
    res = osmem.request("GET", "/leaksentry-*/_search?size=1000")
    return [h["_source"] for h in res.get("hits", {}).get("hits", [])]


def variants(blob: bytes) -> list[str]:
    """The bytes as a reader could decode them: UTF-8 and UTF-16, percent/+ decoded
    (twice), NFKC."""
    out = []
    for text in (blob.decode("utf-8", "replace"), blob.decode("utf-16-le", "ignore")):
        dec = unquote_plus(unquote_plus(text))
        out += [text, dec, unicodedata.normalize("NFKC", dec)]
    return out


def assert_absent(blobs: list[bytes], needles: set[str], what: str) -> None:
    texts = [v for b in blobs for v in variants(b)]
    for needle in needles:
        for t in texts:
            assert needle not in t, f"{what} found in the outputs"


def digit_run(kind: str, canonical: str) -> str:
    """The part of an identifier no mask shows and every written form keeps contiguous:
    the digit run before the check character (the mask shows two digits)."""
    if kind == "hkid":
        return canonical[-7:-1]
    if kind == "hn":
        return canonical[2:-1]
    return re.sub(r"\D", "", canonical)


# --- the three regression cases (issue 14) -------------------------------------------------

@pytest.fixture
def ws(osmem: Any, tmp_path: Path) -> Workspace:
    w = Workspace(tmp_path / "ws", osmem.url, [])
    assert w.run("es", "setup").returncode == 0
    return w


def test_hospital_number_in_a_file_name_is_masked_everywhere(ws: Workspace, osmem: Any,
                                                             tmp_path: Path) -> None:
    p = PATIENTS[3]
    hn = "HN35173745" + p.hn[-1]  # the file name, with this register's number
    name = f"HN35173745({p.hn[-1]})_ward7_records.json"
    register = tmp_path / "ws" / "register2.csv"
    register.write_text(f"ref,hkid,hn\n{p.ref},{p.hkid},{hn}\n", encoding="utf-8")
    build_fingerprints(register, read_key(ws.root / "key"), ws.root / "fp",
                       hkid_column="hkid", hn_column="hn", ref_column="ref")
    register.unlink()
    leak = tmp_path / "in" / name
    leak.parent.mkdir()
    leak.write_text(json.dumps({"patients": [{"name": p.name, "hkid": p.hkid, "hn": hn}]}),
                    encoding="utf-8")
    r = ws.scan(leak)
    assert r.returncode == 1, r.stderr
    line = json.loads(r.stdout)
    assert line["matched_records"] == 1
    assert line["path"].endswith(f"/{mask('hn', hn)}_ward7_records.json")
    docs, hits = ws.query("select url, filename from documents"), \
        ws.query("select url, filename from hits")
    assert docs and hits
    for url, filename in docs + hits:
        assert "35173745" not in url and "35173745" not in (filename or "")
        assert mask("hn", hn) in url
    es = es_docs(osmem)
    assert {d["event"]["dataset"] for d in es} == {"leaksentry.hit", "leaksentry.document"}
    for d in es:
        assert mask("hn", hn) in d["file"]["name"] and mask("hn", hn) in d["leaksentry"]["path"]
    # one mask format in every output, for the identifier found and for the file name
    want = {("hkid", mask("hkid", p.hkid)), ("hn", mask("hn", hn))}
    assert {(m["kind"], m["masked"]) for m in line["matches"]} == want
    (stored,) = ws.query("select matches from hits")
    assert {(m["kind"], m["masked"]) for m in json.loads(stored[0])} == want
    (hit,) = [d for d in es if d["event"]["dataset"] == "leaksentry.hit"]
    assert {(m["kind"], m["masked"]) for m in hit["leaksentry"]["detail"]["matches"]} == want
    shown = ws.run("hits", "--json")
    assert {(m["kind"], m["masked"]) for m in json.loads(shown.stdout)["matches"]} == want
    assert_absent([*ws.outputs, *ws.state_bytes(), json.dumps(es).encode()],
                  {"35173745", p.hkid[-7:-1], p.name}, "the hospital number or the name")


def test_percent_encoded_identifiers_in_a_url_are_masked(ws: Workspace, osmem: Any) -> None:
    """``patient%20A1234563%20HN12345678A.xlsx`` (issue 14 case 2), with this register's
    identifiers, crawled from an open directory: hits.url and url.full masked."""
    p = PATIENTS[5]
    site = ws.root / "site"
    site.mkdir()
    name = f"patient {p.hkid} {p.hn}.csv"
    (site / name).write_text(f"name,hkid,hn\n{p.name},{p.hkid},{p.hn}\n", encoding="utf-8")
    srv = DirServer(site)
    try:
        cfg = ws.config.read_text() + "\n" + dumps({"sources": [{
            "name": "dir", "kind": "directory", "url": srv.url, "allow_private": True,
            "delay": 0, "obey_robots": False}]})
        ws.config.write_text(cfg, encoding="utf-8")
        r = ws.run("crawl", "dir", "--json")
        assert r.returncode == 0, r.stderr
        assert ws.run("es", "flush").returncode == 0
    finally:
        srv.close()
    hits = ws.query("select url from hits")
    assert len(hits) == 1
    want = f"{srv.url}patient%20{mask('hkid', p.hkid)}%20{mask('hn', p.hn)}.csv"
    assert hits[0][0] == want
    hit_docs = [d for d in es_docs(osmem) if d["event"]["dataset"] == "leaksentry.hit"]
    assert [d["url"]["full"] for d in hit_docs] == [want]
    assert_absent([*ws.outputs, *ws.state_bytes(), json.dumps(es_docs(osmem)).encode()],
                  {p.hkid[-7:-1], p.hn[2:-1], p.name}, "an identifier or the name")


def test_no_patient_name_is_stored_by_default(ws: Workspace, osmem: Any,
                                              tmp_path: Path) -> None:
    """Context snippets keep document text: off unless [privacy] context = masked-text."""
    leak = tmp_path / "paste.txt"
    lines = [f"Patient {p.name} ({p.name_zh}) HKID {p.hkid} HN {p.hn} for {p.procedure}"
             for p in PATIENTS[:6]]
    leak.write_text("\n".join(lines), encoding="utf-8")
    r = ws.scan(leak)
    assert r.returncode == 1 and json.loads(r.stdout)["matched_records"] == 6
    assert ws.query("select snippets from hits") == [("[]",)]
    es = es_docs(osmem)
    assert all(not d["leaksentry"].get("snippets") for d in es)
    names = {p.name for p in PATIENTS[:6]} | {p.name_zh for p in PATIENTS[:6]}
    assert_absent([*ws.outputs, *ws.state_bytes(), json.dumps(es).encode()], names,
                  "a patient name")
    # the explicit opt-in keeps (masked) document text, as documented
    ws.config.write_text(ws.config.read_text() + '\n[privacy]\ncontext = "masked-text"\n')
    leak.write_text("\n".join(lines[:3]), encoding="utf-8")
    assert ws.scan(leak).returncode == 1
    kept = [json.loads(s) for (s,) in ws.query("select snippets from hits")]
    assert any(s for s in kept) and PATIENTS[0].hkid not in json.dumps(kept)


# --- the property test over every sink at once ---------------------------------------------

KINDS = ["hkid", "hn", "mrn", "other-hkid"]


def written(kind: str, canonical: str, rng: random.Random, *, in_name: bool) -> str:
    """A written form; in a file or directory name, no ``/``."""
    if kind == "hkid":
        forms = synth.hkid_written_forms(canonical)
        if in_name:
            forms = [f for f in forms if "/" not in f and "／" not in f]
        return rng.choice(forms)
    if kind == "hn":
        return synth.written_hn(canonical, rng)
    return rng.choice([canonical, f"MRN-{canonical[3:]}"])


def encoded(text: str, how: str) -> str:
    if how == "percent":  # a name that is itself percent-encoded (a re-uploaded download)
        return quote(text, safe="")
    if how == "plus":
        return text.replace(" ", "+")
    return text


@st.composite
def plantings(draw: st.DrawFn) -> dict[str, Any]:
    seed = draw(st.integers(0, 2**32 - 1))
    rng = random.Random(seed)
    slots = []
    for _ in range(8):
        kind = draw(st.sampled_from(KINDS))
        i = rng.randrange(len(PATIENTS))
        if kind == "other-hkid":  # valid, not in the register: personal data too
            canonical, k = synth.hkid(rng), "hkid"
        elif kind == "mrn":
            canonical, k = mrn_of(i), "mrn"
        else:
            canonical, k = (PATIENTS[i].hkid if kind == "hkid" else PATIENTS[i].hn), kind
        slots.append((k, canonical, i))
    hows = [draw(st.sampled_from(["plain", "percent", "plus"])) for _ in range(3)]
    return {"seed": seed, "slots": slots, "hows": hows}


def build_inputs(root: Path, plan: dict[str, Any]) -> tuple[Path, set[str], set[str]]:
    """The planted tree; returns (dir, needles, names planted next to identifiers)."""
    rng = random.Random(plan["seed"])
    slots = plan["slots"]
    needles = {digit_run(k, c) for k, c, _ in slots}
    names: set[str] = set()

    def w(j: int, in_name: bool = False) -> str:
        k, c, _ = slots[j]
        return written(k, c, rng, in_name=in_name)

    def row(j: int) -> list[str]:
        p = PATIENTS[slots[j][2]]
        names.add(p.name)
        return [p.name, p.gender, p.hkid, p.hn, mrn_of(slots[j][2]), p.procedure]

    d = root / "inputs"
    sub = d / encoded(f"ward {w(0, True)}", plan["hows"][0])  # a directory name
    sub.mkdir(parents=True)
    # a file name; a table header holding an identifier; content rows
    buf = io.StringIO()
    wr = csv.writer(buf)
    wr.writerow(["Patient Name", "Gender", f"HKID {w(2)}", "Hospital No", "MRN", "Procedure"])
    wr.writerows([row(1), row(2)])
    (sub / encoded(f"records {w(1, True)}.csv", plan["hows"][1])).write_text(
        buf.getvalue(), encoding="utf-8")
    # JSON keyed by identifier
    (d / "export.json").write_text(json.dumps(
        {w(3): {"name": row(3)[0], "hn": PATIENTS[slots[3][2]].hn}}), encoding="utf-8")
    # an archive whose member names hold identifiers, one member corrupt (an error message)
    with zipfile.ZipFile(d / "backup.zip", "w") as z:
        z.writestr(f"{w(4, True)}/list.txt", f"Name: {row(4)[0]}  ID {w(4)}\n")
        z.writestr(f"scan {w(5, True)}.xlsx", b"PK\x03\x04 not really a workbook")
    # a corrupt file whose name holds an identifier
    (d / encoded(f"{w(6, True)}.docx", plan["hows"][2])).write_bytes(b"PK\x03\x04garbage")
    # plain content: a paste with names next to identifiers in every form
    (d / "paste.txt").write_text(
        "\n".join(f"姓名：{PATIENTS[i].name_zh} Name: {row(j)[0]}  {w(j)}"
                  for j, (_k, _c, i) in enumerate(slots)), encoding="utf-8")
    names |= {PATIENTS[i].name_zh for _k, _c, i in slots}
    return d, needles, names


def _every_channel(kit: Any, receivers: list, smtp: Any, udp: Any, tcp: Any) -> tuple:
    hook = kit.start_receiver(kit.Receiver())
    chat = kit.start_receiver(kit.Receiver(secret=None))
    receivers += [hook, chat]
    return hook, chat, [
        {"name": "hook", "type": "webhook", "url": hook.url, "secret": kit.SECRET},
        {"name": "slack", "type": "slack", "url": chat.url + "/slack"},
        {"name": "teams", "type": "teams", "url": chat.url + "/teams"},
        {"name": "mail", "type": "email", "host": "127.0.0.1", "port": smtp.port,
         "username": "soc", "to": ["soc@hospital.example"], "ca_file": smtp.ca_file},
        {"name": "siem-udp", "type": "syslog", "port": udp.port},
        {"name": "siem-tcp", "type": "syslog", "port": tcp.port, "protocol": "tcp"},
    ]


@pytest.mark.slow
@settings(max_examples=3, deadline=None, derandomize=True,
          phases=[Phase.explicit, Phase.reuse, Phase.generate],  # a run is too slow to shrink
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(plan=plantings())
def test_no_planted_identifier_or_name_in_any_byte_written(
        plan: dict[str, Any], osmem: Any, kit: Any, receivers: list, smtp_starttls: Any,
        syslog_udp: Any, syslog_tcp: Any, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("LEAKSENTRY_SMTP_PASSWORD", "smtp-pass")  # alerts delivered in-process
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        inputs, needles, names = build_inputs(root, plan)
        srv = DirServer(inputs)
        k, c, _ = plan["slots"][7]
        ident = written(k, c, random.Random(1), in_name=True)
        try:
            hook, chat, channels = _every_channel(kit, receivers, smtp_starttls,
                                                  syslog_udp, syslog_tcp)
            ws = Workspace(root / "ws", osmem.url, channels, sources=[
                {"name": "dir", "kind": "directory", "url": srv.url, "allow_private": True,
                 "delay": 0, "obey_robots": False, "max_depth": 3},
                # userinfo, an identifier in the path and the query of a URL that fails
                {"name": "dead", "kind": "watch", "allow_private": True, "retry_max": 0,
                 "urls": [f"http://soc:hunter2pw@127.0.0.1:9/{quote(ident)}/x?id="
                          f"{quote(ident)}"]},
            ])
            needles.add("hunter2pw")
            assert ws.run("es", "setup").returncode == 0
            scan = ws.scan(inputs)
            assert scan.returncode == 1, scan.stderr
            found = [json.loads(x) for x in scan.stdout.splitlines()]
            assert sum(f["matched_records"] for f in found) >= 3  # the search is meaningful
            assert ws.run("crawl", "dir", "--json").returncode in (0, 1)
            ws.run("crawl", "dead", "--json")
            assert ws.run("es", "flush").returncode == 0
            settings_ = load_config(ws.config)
            store = Store(settings_.state.db)
            try:
                report = deliver_pending(store, settings_,
                                         datetime.now(UTC) + timedelta(hours=2),
                                         rng=random.Random(2))
            finally:
                store.close()
            assert report.delivered >= 6, report
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not (syslog_udp.messages
                                                       and syslog_tcp.messages):
                time.sleep(0.05)
            assert ws.query("select count(*) from source_runs where source = 'dead'")
        finally:
            srv.close()
        blobs = [*ws.outputs, *ws.state_bytes(), json.dumps(es_docs(osmem)).encode()]
        for q in hook.requests + chat.requests:
            blobs += [q.path.encode(), json.dumps(q.headers).encode(), q.body]
        blobs += list(smtp_starttls.messages) + syslog_udp.messages + syslog_tcp.messages
        blobs.append(caplog.text.encode())
        assert hook.requests and chat.requests and smtp_starttls.messages
        # the search finds what it looks for: the inputs hold every needle and name
        planted = b"\n".join(p.read_bytes() + str(p).encode() for p in inputs.rglob("*")
                             if p.is_file())
        for n in needles - {"hunter2pw"}:
            assert any(n in v for v in variants(planted)), n
        assert_absent(blobs, needles, "a planted identifier or password")
        assert_absent(blobs, names, "a register name")

