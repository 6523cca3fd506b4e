"""`leaksentry scan`: match local files (or stdin) against the fingerprints.

Each document goes through ``pipelines.process.scan_document`` (extraction
with its limits, then the matcher), exactly as crawled uploads do. Output is
masked identifiers and register references only.

Imports inside the command: `scan --help` loads neither the scanner (numpy, hyperscan)
nor the extractors, and `scan --json` of a text file neither the store nor Rich's
tables (start-up, tests/leaksentry/cli/test_startup.py, bench/bench_cli.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from leaksentry.cli import common
from leaksentry.cli.common import ConfigOption, problem, settings, shown
from leaksentry.errors import ConfigError, InputError
from pipelines.model import Document, Finding, ScanResult, Skipped, utcnow

if TYPE_CHECKING:
    from leaksentry.config import Settings
    from pipelines.process import DocumentScanner

EXIT_HELP = (
    "Exit status: 0 nothing matched; 1 something matched (a register record, or"
    " enough valid identifiers that are not in the register to rate a severity);"
    " 2 usage or input error (bad option, unreadable key, fingerprint file or path,"
    " empty stdin, or a document that could not be scanned: status other than ok,"
    " or content of it that was skipped unread), when nothing matched."
)
STDIN = "-"
REFS_SHOWN = 10
MATCHES_SHOWN = 20


def _inputs(paths: list[str]) -> Iterator[tuple[str, Path | None, bool]]:
    """(display path, file, named on the command line) per input; directories are walked
    recursively, sorted. What a walked entry is (FIFO, device ...) is the scanner's to
    check: nothing here opens it."""
    for p in paths:
        if p == STDIN:
            yield STDIN, None, True
            continue
        path = Path(p)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    f = Path(root) / name
                    yield str(f), f, False
        else:
            yield p, path, True


def _input_error(display: str, exc: OSError) -> InputError:
    if isinstance(exc, FileNotFoundError):
        return InputError(f"{display}: no such file")
    if isinstance(exc, IsADirectoryError):
        return InputError(f"{display}: is a directory")
    return InputError(f"{display}: cannot read: {exc.strerror or type(exc).__name__}")


def _scan_one(scanner: DocumentScanner, display: str, path: Path | None, named: bool,
              limit: int) -> tuple[Finding, Callable[[], bytes | None]]:
    """One input through the scanner: a file is read by the worker (never copied through
    a pipe), stdin here, bounded by the input limit. Returns the finding and how to get
    the document's bytes again (for the evidence vault, hits only)."""
    from pipelines import localfile

    if path is not None:
        try:
            finding = scanner.scan_file(path, url=display, streams=named)
        except OSError as exc:
            raise _input_error(display, exc) from None
        return finding, lambda: _reread(path, finding.sha256, limit)
    try:
        data, _ = localfile.read_stream(sys.stdin.buffer.fileno(), limit)
    except localfile.NotRead as exc:
        error = f"stdin: {exc.reason}"
        return Finding(url=STDIN, source="scan", sha256=None, size=exc.size,
                       fetched_at=utcnow(), result=ScanResult(
                           status=exc.status, error=error,
                           skipped=[Skipped(where="stdin", status=exc.status, error=error)])
                       ), lambda: None
    except OSError as exc:
        raise _input_error("stdin", exc) from None
    if not data:
        raise InputError("stdin: empty input")
    return scanner.scan(Document(url=STDIN, source="scan", content=data)), lambda: data


def _reread(path: Path, sha256: str | None, limit: int) -> bytes | None:
    """A scanned file's bytes again, if they are still the ones scanned (same sha256)."""
    from pipelines import localfile

    try:
        f = localfile.inspect(path, limit)
        data = localfile.read_regular(f, limit) if f is not None else None
    except (OSError, localfile.NotRead):
        return None
    if data is None or hashlib.sha256(data).hexdigest() != sha256:
        return None
    return data


def _refs(refs: list[str]) -> str:
    shown = ", ".join(refs[:REFS_SHOWN])
    return shown + (f" (+{len(refs) - REFS_SHOWN} more)" if len(refs) > REFS_SHOWN else "")


def _print(findings: list[Finding]) -> None:
    """A summary table, then each matching document's masked matches."""
    from rich.table import Table
    from rich.text import Text

    console = common.console

    table = Table(title="leaksentry scan", title_justify="left")
    for col in ("path", "status", "severity", "records", "not in register"):
        table.add_column(col, overflow="fold")
    for f in findings:
        r = f.result
        unmatched = ", ".join(f"{k} {v}" for k, v in r.unmatched_valid.items() if v)
        status = r.status if r.status == "ok" else f"{r.status}: {r.error or ''}"
        table.add_row(shown(f.url), shown(status), r.severity, str(r.matched_records),
                      unmatched)
    console.print(table)
    for f in findings:
        r = f.result
        if not r.matches:
            continue
        console.print(Text.assemble(shown(f.url, "bold"), f": {r.matched_records} record(s): ",
                                    shown(_refs(r.record_refs))), soft_wrap=True)
        if r.exposed_categories:
            fields = f" ({', '.join(r.exposed_fields)})" if r.exposed_fields else ""
            console.print(shown(f"  exposed: {', '.join(r.exposed_categories)}{fields}"),
                          highlight=False, soft_wrap=True)
        for m in r.matches[:MATCHES_SHOWN]:
            console.print(shown(f"  {m.kind} {m.masked}  ref {m.record_ref}  x{m.count}"
                                f"  at {m.where}"), highlight=False, soft_wrap=True)
        if len(r.matches) > MATCHES_SHOWN:
            console.print(f"  (+{len(r.matches) - MATCHES_SHOWN} more; use --json for all)",
                          highlight=False)


class _Recorder:
    """`scan --index`: findings go through the same flow as crawled documents
    (local store + outbox + Elasticsearch spool in one transaction), then the
    spool is drained once; what the cluster does not take stays spooled."""

    def __init__(self, s: Settings) -> None:
        from leaksentry.store import Store
        from pipelines.sinks.vault import Vault

        self.settings = s
        self.store = Store(s.state)
        self.vault = Vault.from_settings(s)
        self.recorded = 0
        self.unread = 0

    def record(self, finding: Finding, content: Callable[[], bytes | None]) -> None:
        """``content`` is called only for a hit the evidence vault keeps: the worker read
        the file, so the document is read again here, only then."""
        from pipelines.flow import record_finding

        if finding.sha256 is None:  # not read (too large, not a file): as a crawl does
            self.unread += 1
            return
        record_finding(self.store, finding, self.settings, vault=self.vault, content=content)
        self.recorded += 1

    def finish(self) -> None:
        msg = f"recorded {self.recorded} document(s) in {self.store.path}"
        if self.unread:
            msg += f" ({self.unread} not read and not recorded: see their status)"
        if self.settings.elasticsearch.enabled:
            from pipelines.sinks.spool import drain

            rep = drain(self.store, self.settings)
            msg += f"; Elasticsearch: {rep.delivered} indexed, {rep.pending} still spooled"
            if rep.unreachable or rep.error:
                msg += f" ({rep.error or 'unreachable'}; `leaksentry es flush` retries)"
        common.err_console.print(shown(msg), highlight=False, soft_wrap=True)


def scan(
    paths: Annotated[list[str], typer.Argument(
        metavar="PATH... | -", help="Files or directories (walked recursively); - reads stdin.",
        show_default=False)],
    key: Annotated[Path | None, typer.Option(
        "--key", help="Key file (default: matching.key in the config).",
        show_default=False)] = None,
    fingerprints: Annotated[Path | None, typer.Option(
        "--fingerprints", help="Fingerprint file (default: matching.fingerprints).",
        show_default=False)] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON object per document (JSON Lines).")] = False,
    index: Annotated[bool, typer.Option(
        "--index", help=("Also record each document in the state store (and its alert"
                         " outbox), and index it into Elasticsearch when [elasticsearch]"
                         " is configured; `leaksentry hits` then lists the hits."))] = False,
    config: ConfigOption = None,
) -> None:
    """Scan files for the register's identifiers; print masked matches and record refs."""
    from pipelines.match import Matcher
    from pipelines.process import DocumentScanner

    s = settings(config)
    key_path = key or s.matching.key
    fp_path = fingerprints or s.matching.fingerprints
    if key_path is None:
        raise ConfigError("no key: give --key or set matching.key in the config")
    if fp_path is None:
        raise ConfigError("no fingerprints: give --fingerprints or set matching.fingerprints")
    # the fingerprint file's integrity check runs while the first document is scanned;
    # nothing is said about a document before it passed
    matcher = Matcher.load(key_path, fp_path, s.matching, verify="background")
    verified = matcher.fingerprints.verified
    passwords = tuple(getattr(s.extract, "passwords", ()) or ())

    recorder = _Recorder(s) if index else None
    findings: list[Finding] = []
    failed = matched = False
    # a one-off scan imports the format libraries it meets, not all of them up front; a
    # small plain file is scanned here, without starting a worker; a large plain text in
    # two halves at once
    scanner = DocumentScanner(matcher, s.extract, passwords, preload_formats=False,
                              inline_small=True, split_large=True)
    with scanner:
        for display, path, named in _inputs(paths):
            try:
                finding, content = _scan_one(scanner, display, path, named,
                                             s.extract.max_input_bytes)
            except Exception as exc:  # never a traceback at the user; the type says enough
                verified()
                problem("error: ", "red", exc if isinstance(exc, InputError) else
                        f"{display}: could not be scanned ({type(exc).__name__})")
                failed = True
                continue
            verified()
            r = finding.result
            if r.status != "ok":
                failed = True
                problem("warning: ", "yellow", f"{display}: {r.status}: {r.error or ''}".strip())
            elif r.skipped:  # read, but not all of it: never a clean "nothing found"
                if not r.hit:
                    failed = True
                more = r.details.get("skipped_more", 0)
                first = r.skipped[0]
                problem("warning: ", "yellow",
                        f"{display}: {len(r.skipped) + more} part(s) skipped unread, e.g. "
                        f"{first.where}: {first.status}")
            matched = matched or r.hit
            if recorder is not None:
                recorder.record(finding, content)
            if as_json:
                sys.stdout.write(json.dumps(finding.scan_json(), ensure_ascii=False) + "\n")
                sys.stdout.flush()
            else:
                findings.append(finding)
    verified()  # also when there was nothing to scan (an empty directory)
    if not as_json and findings:
        _print(findings)
    if recorder is not None:
        recorder.finish()
    raise typer.Exit(1 if matched else 2 if failed else 0)


def register(app: typer.Typer) -> None:
    app.command("scan", epilog=EXIT_HELP)(scan)
