"""A CSV whose first 64 KB are ``,"a`` repeated (issue 20, item 2): ``csv.Sniffer``'s
regexes backtracked on it until the document's time limit, and nothing was scanned.
Through the real CLI: the file is scanned and the identifier after the hostile sample is
found (tests never assert on wall time; the old sniffer ended this one as ``timeout``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from leaksentry import synth
from pipelines.extract.text import _dialect
from pipelines.match import build_fingerprints, generate_key, read_key


def test_hostile_csv_sample_is_scanned(tmp_path: Path) -> None:
    people = list(synth.patients(3, seed=5))
    reg = tmp_path / "register.csv"
    reg.write_text("ref,hkid\n" + "".join(f"{p.ref},{p.hkid}\n" for p in people))
    generate_key(tmp_path / "key")
    build_fingerprints(reg, read_key(tmp_path / "key"), tmp_path / "fp")
    hostile = tmp_path / "export.csv"
    hostile.write_text(',"a' * (64 * 1024 // 3) + "\nname,id\n"
                       + "".join(f"{p.name},{p.hkid}\n" for p in people))
    cfg = tmp_path / "leaksentry.toml"
    cfg.write_text("[extract]\ntime_limit = \"20s\"\n")
    r = subprocess.run([sys.executable, "-m", "leaksentry", "scan", "--config", str(cfg),
                        "--key", str(tmp_path / "key"), "--fingerprints", str(tmp_path / "fp"),
                        "--json", str(hostile)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr  # a match
    (doc,) = [json.loads(line) for line in r.stdout.splitlines()]
    assert doc["status"] == "ok", doc
    assert doc["record_refs"] == [p.ref for p in people]


def test_dialect_guess() -> None:
    assert _dialect("a;b;c\n1;2;3\n", "csv").delimiter == ";"
    assert _dialect('a,"b;c",d\n1,"2;3",4\n', "csv").delimiter == ","
    assert _dialect("a\tb\n1\t2\n", "tsv").delimiter == "\t"
    assert _dialect("a|b|c\n1|2|3\n", "csv").delimiter == "|"
    assert _dialect("just text\n", "csv").delimiter == ","
    assert _dialect(',"a' * 20000, "csv").delimiter == ","
