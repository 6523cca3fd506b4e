"""scan_document / DocumentScanner: extraction + matching in a stoppable worker.

The real matcher is used wherever behaviour depends on it. A few tests need a
matcher that hangs, crashes or eats memory on purpose; the real one does none
of these, so those tests use the tiny stand-ins below (each says what it does).
"""

from __future__ import annotations

import csv
import faulthandler
import io
import os
import signal
import time
import zipfile

import pytest
from fixtures_register import register_matcher

from leaksentry.config.extract import ExtractConfig
from leaksentry.synth import patients, register_rows
from pipelines import process
from pipelines.model import STATUSES, Document, ScanResult
from pipelines.process import DocumentScanner, scan_document

PEOPLE = list(patients(10, seed=11))
MODES = ("warm", "fork")


@pytest.fixture(scope="module")
def matcher(tmp_path_factory: pytest.TempPathFactory):
    return register_matcher(tmp_path_factory.mktemp("fp"),
                            register_rows(200, seed=11),  # first 10 = PEOPLE
                            hkid_column="hkid", hn_column="hn", ref_column="ref")


def _csv_doc(name: str = "leak.csv", people: list | None = None) -> Document:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["name", "hkid", "hn"])
    for p in PEOPLE if people is None else people:
        w.writerow([p.name, p.hkid, p.hn])
    return Document(url=f"https://paste.example/{name}", source="test",
                    content=buf.getvalue().encode(), filename=name)


def _check_ok(finding) -> None:
    r = finding.result
    assert r.status == "ok", r.error
    assert r.matched_records == len(PEOPLE)
    assert sorted(r.record_level_refs, key=int) == [p.ref for p in PEOPLE]


class SleepingMatcher:
    """Stand-in: hangs on a part containing HANG (a pathological document), after
    writing the worker's pid to ``pid_file`` (so the test can see that worker end)."""

    def __init__(self, pid_file=None):
        self.pid_file = pid_file

    def scan(self, parts):
        n = 0
        for part in parts:
            n += 1
            if "HANG" in part.string:
                if self.pid_file is not None:
                    self.pid_file.write_text(str(os.getpid()))
                time.sleep(3600)
        return ScanResult(parts=n)


class CrashingMatcher:
    """Stand-in: the worker dies by a signal on CRASH (a C-library crash)."""

    def scan(self, parts):
        for part in parts:
            if "CRASH" in part.string:
                faulthandler.disable()  # pytest's traceback dump would only be noise
                os.kill(os.getpid(), signal.SIGSEGV)
        return ScanResult()


class GreedyMatcher:
    """Stand-in: tries to allocate 4 GiB (runaway memory) on GREEDY."""

    def scan(self, parts):
        for part in parts:
            if "GREEDY" in part.string:
                hog = bytearray(4 << 30)
                return ScanResult(parts=len(hog))
        return ScanResult()


def _doc(text: str, name: str = "x.txt") -> Document:
    return Document(url=name, source="test", content=text.encode(), filename=name)


@pytest.mark.parametrize("mode", (*MODES, "inline"))
def test_scan_with_real_matcher(matcher, mode):
    with DocumentScanner(matcher, mode=mode) as scanner:
        finding = scanner.scan(_csv_doc())
        _check_ok(finding)
        assert finding.url == "https://paste.example/leak.csv"
        assert finding.result.details["type"] == "csv"
        assert finding.result.matches[0].where.startswith("leak.csv!")


def test_scan_document_default_scanner_is_reused(matcher):
    _check_ok(scan_document(_csv_doc(), matcher))
    first = process._default
    _check_ok(scan_document(_csv_doc(), matcher))
    assert process._default is first
    scan_document(_csv_doc(), matcher, ExtractConfig(time_limit=30))
    assert process._default is not first
    process._default.close()


@pytest.mark.parametrize("mode", MODES)
def test_hang_is_killed_at_the_time_limit_and_the_run_continues(mode, tmp_path):
    cfg = ExtractConfig(time_limit=0.5, kill_grace=0.2)
    pid_file = tmp_path / "worker.pid"
    with DocumentScanner(SleepingMatcher(pid_file), cfg, mode=mode) as scanner:
        r = scanner.scan(_doc("please HANG here")).result
        assert r.status == "timeout" and "time limit of 0.5 s" in r.error
        assert r.details["type"] == "text" and r.details["killed"] is True
        # the hung worker is gone (killed and reaped), not left sleeping its hour
        hung = int(pid_file.read_text())
        assert hung != os.getpid() and hung != scanner._pid
        with pytest.raises(ChildProcessError):
            os.waitpid(hung, os.WNOHANG)
        with pytest.raises(ProcessLookupError):
            os.kill(hung, 0)
        assert scanner.scan(_doc("fine")).result.status == "ok"


@pytest.mark.parametrize("mode", MODES)
def test_worker_crash_is_a_status(mode):
    with DocumentScanner(CrashingMatcher(), mode=mode) as scanner:
        r = scanner.scan(_doc("CRASH now", "boom.txt")).result
        assert r.status == "error" and "SIGSEGV" in r.error and r.error.startswith("boom.txt")
        assert scanner.scan(_doc("fine")).result.status == "ok"


@pytest.mark.parametrize("mode", MODES)
def test_worker_memory_is_capped(mode):
    cfg = ExtractConfig(worker_memory_bytes=512 * 1024 * 1024)
    with DocumentScanner(GreedyMatcher(), cfg, mode=mode) as scanner:
        r = scanner.scan(_doc("GREEDY")).result
        assert r.status == "too_large" and "memory" in r.error
        assert scanner.scan(_doc("fine")).result.status == "ok"


def test_extraction_status_error_and_details_are_copied(matcher):
    import pyzipper

    buf = io.BytesIO()
    with pyzipper.AESZipFile(buf, "w", encryption=pyzipper.WZ_AES) as zf:
        zf.setpassword(b"posted-next-to-the-link")
        zf.writestr("export/patients.csv", _csv_doc().content)
    doc = Document(url="u", source="test", content=buf.getvalue(), filename="locked.zip")
    with DocumentScanner(matcher) as scanner:
        r = scanner.scan(doc).result
        assert r.status == "encrypted" and r.error.startswith("locked.zip:")
        assert r.details["encrypted_members"] == ["locked.zip/export/patients.csv"]
        assert r.matched_records == 0
        r = scanner.scan(doc, passwords=("posted-next-to-the-link",)).result
        assert r.status == "ok" and r.matched_records == len(PEOPLE)
        assert r.details["passwords_worked"] == 1


def test_hostile_sequence_each_gets_a_status_and_the_run_continues(matcher):
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.csv", bytes(128 << 20))
    docs = [
        Document(url="a", source="t", content=bomb.getvalue(), filename="bomb.zip"),
        Document(url="b", source="t", content=b"%PDF-1.5\n" + os.urandom(20000),
                 filename="x.pdf"),
        Document(url="c", source="t", content=b"", filename="empty"),
        Document(url="d", source="t", content=b"[" * 100000, filename="deep.json"),
        Document(url="e", source="t", content=b"\x89PNG\r\n\x1a\n" + bytes(100),
                 filename="p.png"),
        _csv_doc(),
    ]
    with DocumentScanner(matcher, ExtractConfig(time_limit=20)) as scanner:
        results = [scanner.scan(d).result for d in docs]
    assert [r.status for r in results] == ["too_large", "corrupt", "ok", "corrupt",
                                           "corrupt", "ok"]
    assert all(r.status in STATUSES for r in results)
    assert results[-1].matched_records == len(PEOPLE)
    for r in results:
        text = f"{r.error} {r.details}"
        for p in PEOPLE:
            assert p.hkid not in text and p.hn not in text


def test_close_reaps_the_warm_worker(matcher):
    scanner = DocumentScanner(matcher, mode="warm")
    scanner.scan(_csv_doc())
    pid = scanner._pid
    assert pid
    scanner.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def test_warm_worker_is_recycled(matcher):
    with DocumentScanner(matcher, ExtractConfig(worker_max_documents=2)) as scanner:
        pids = []
        for _ in range(5):
            _check_ok(scanner.scan(_csv_doc()))
            pids.append(scanner._pid)
    assert len(set(pids)) == 3


def test_concurrent_callers_share_one_worker_safely(matcher):
    """Eight different documents from four threads through one worker: each caller
    gets its own document's finding, never another caller's."""
    from concurrent.futures import ThreadPoolExecutor

    registered = list(patients(200, seed=11))  # the register of the matcher fixture
    groups = [registered[10 + 5 * i:15 + 5 * i] for i in range(8)]
    docs = [_csv_doc(f"leak-{i}.csv", people) for i, people in enumerate(groups)]
    with DocumentScanner(matcher, mode="warm") as scanner, ThreadPoolExecutor(4) as pool:
        findings = list(pool.map(scanner.scan, docs))
    for doc, people, f in zip(docs, groups, findings, strict=True):
        assert f.url == doc.url and f.sha256 == doc.sha256 and f.result.status == "ok"
        assert sorted(f.result.record_level_refs, key=int) == [p.ref for p in people]


def test_several_warm_scanners_close_promptly(matcher):
    """Each worker sees end-of-file when its own scanner closes, although later workers
    were forked while the earlier pipes were open."""
    scanners = [DocumentScanner(matcher, mode="warm") for _ in range(3)]
    for s in scanners:
        _check_ok(s.scan(_csv_doc()))
    for s in scanners:
        s.close()
    assert [s.last_exit for s in scanners] == ["exited 0"] * 3  # ended, not killed


def test_a_warm_worker_that_died_idle_is_replaced(matcher):
    with DocumentScanner(matcher, mode="warm") as scanner:
        _check_ok(scanner.scan(_csv_doc()))
        first = scanner._pid
        os.kill(first, signal.SIGKILL)  # e.g. the OOM killer, between documents
        os.waitpid(first, 0)
        _check_ok(scanner.scan(_csv_doc()))
        assert scanner._pid != first


class SlowMatcher:
    """Stand-in: spends 20 ms per part (a matcher slower than the document is long)."""

    def scan(self, parts):
        n = 0
        for _ in parts:
            n += 1
            time.sleep(0.02)
        return ScanResult(parts=n)


@pytest.mark.parametrize("mode", MODES)
def test_time_limit_keeps_the_partial_result(mode):
    """Extraction stops early enough that the matcher's partial result comes back
    (status timeout, parts counted) instead of the worker being killed."""
    cfg = ExtractConfig(time_limit=1.0, kill_grace=0.5)
    doc = _doc("a,b\n" * 10_000, "many.csv")
    with DocumentScanner(SlowMatcher(), cfg, mode=mode) as scanner:
        r = scanner.scan(doc).result
    assert r.status == "timeout" and "killed" not in r.details
    assert 0 < r.parts < 10_000
