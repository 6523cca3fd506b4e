"""Run the demo: scenario, key and fingerprints, sites, one cycle of every source
through the daemon's own crawl runner, alert delivery, optional indexing.

Every step uses the code a real deployment uses: the functions behind
``keygen`` and ``fingerprints build`` (as the trusted side runs them),
``leaksentry crawl NAME --config FILE`` in a subprocess per source
(``scheduler.crawls.run_crawl``, as the daemon does, all sources at once),
the daemon's health job, ``deliver_pending`` for the outbox and the spool's
``drain`` for Elasticsearch. A step that fails is reported and the demo goes on
with the rest, so one broken component does not hide the others.

Nothing here prints or returns an identifier: hits are read back from the
state store, which holds masked forms and register refs only.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leaksentry.config import load_config
from leaksentry.config.matching import MatchingConfig
from leaksentry.demo.aftercare import evidence_step, make_identity, notify_step
from leaksentry.demo.config import (
    WEBHOOK_CHANNEL,
    DemoSource,
    SiteUrls,
    demo_sources,
    matching_table,
    write_config,
)
from leaksentry.demo.scenario import EXPORT_ROWS, Scenario, build_scenario
from leaksentry.demo.sites import LocalSite, PasteFeedSite, StaticSite, WebhookReceiver
from leaksentry.errors import InputError, LeakSentryError
from leaksentry.store import Store
from pipelines.alerts.health import plan_health_alerts
from pipelines.alerts.worker import deliver_pending
from pipelines.match import build_fingerprints, generate_key, read_key
from pipelines.sinks.local import count_documents, query_hits
from pipelines.sinks.spool import drain
from scheduler.crawls import RunningCrawls, run_crawl
from scheduler.schedule import schedules

if TYPE_CHECKING:
    from leaksentry.config import Settings

#: step callback: (step name, state "start" | "done" | "skip" | "fail", detail)
Progress = Callable[[str, str, str], None]


def _noop(step: str, state: str, detail: str) -> None:
    pass


@dataclass(slots=True)
class SourceOutcome:
    name: str
    kind: str
    title: str
    url: str
    available: bool = True
    outcome: str = "skipped"
    discovered: int = 0
    fetched: int = 0
    new: int = 0
    hits: int = 0
    duration: float = 0.0
    error: str | None = None


@dataclass(slots=True)
class AlertSeen:
    """An alert as the local receiver got it (masked content only)."""

    idempotency_key: str
    event: str
    severity: str
    source: str | None
    url: str | None
    matched_records: int | None
    verified: bool
    payload: dict[str, Any] = field(default_factory=dict)  # the alert body (masked)


@dataclass(slots=True)
class DemoRun:
    scenario: Scenario
    urls: SiteUrls | None = None
    sources: list[SourceOutcome] = field(default_factory=list)
    hits: list[dict[str, Any]] = field(default_factory=list)
    documents: int | None = None
    alerts: list[AlertSeen] = field(default_factory=list)
    alert_duplicates: int = 0
    alerts_rejected: int = 0
    delivery: str | None = None
    es: dict[str, Any] | None = None
    missing: list[str] = field(default_factory=list)  # a failed fingerprints build, no Chromium
    timings: dict[str, float] = field(default_factory=dict)
    fingerprints: str | None = None
    evidence: dict[str, Any] | None = None  # what the vault kept, the top hit opened
    notify: dict[str, Any] | None = None  # the notification report (counts only)

    @property
    def db_path(self) -> Path:
        return self.scenario.state_dir / "state.db"

    def to_json(self) -> dict[str, Any]:
        sc = self.scenario
        return {
            "dir": str(sc.root),
            "config": str(sc.config_path),
            "state_db": str(self.db_path),
            "expected": str(sc.expected_path),
            "register_size": sc.register_size,
            "export_rows": sc.export_rows,
            "sites": _slot_dict(self.urls) if self.urls else None,
            "sources": _slots(self.sources),
            "documents": self.documents,
            "hits": self.hits,
            "alerts": [_slot_dict(a) for a in self.alerts],
            "alert_duplicates": self.alert_duplicates,
            "alerts_rejected": self.alerts_rejected,
            "delivery": self.delivery,
            "elasticsearch": self.es,
            "missing": self.missing,
            "timings": {k: round(v, 2) for k, v in self.timings.items()},
            "evidence": self.evidence,
            "notify": self.notify,
        }


def _slot_dict(obj: Any) -> dict[str, Any]:
    return {k: getattr(obj, k) for k in obj.__slots__}


def _slots(items: list[Any]) -> list[dict[str, Any]]:
    return [_slot_dict(i) for i in items]


# -- components --------------------------------------------------------------------

def make_fingerprints(sc: Scenario, matching: MatchingConfig | None = None) -> str:
    """Key and fingerprints from the register, as the trusted side makes them: the same
    functions ``leaksentry keygen`` and ``leaksentry fingerprints build --hkid-column hkid
    --hn-column hn --ref-column ref`` call (in-process: two CLI start-ups would cost more
    than the build). Returns a one-line summary; raises RuntimeError when unavailable."""
    sc.key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        generate_key(sc.key_path)
        rep = build_fingerprints(sc.register, read_key(sc.key_path), sc.fingerprints_path,
                                 hkid_column="hkid", hn_column="hn", ref_column="ref",
                                 config=matching)
    except LeakSentryError as exc:
        raise RuntimeError(str(exc)) from None
    except Exception as exc:  # a bug in a component must not crash the demo; its message
        # may quote the register, so only the exception type is shown
        raise RuntimeError(f"fingerprints build failed ({type(exc).__name__})") from None
    kinds = ", ".join(f"{n} {k.written:,}" for n, k in rep.kinds.items())
    return f"{rep.identifiers:,} keyed fingerprints ({kinds}) from {rep.rows:,} rows"


# -- the run -------------------------------------------------------------------------

class DemoSites:
    """All loopback sites of a scenario, started together, stopped together."""

    def __init__(self, sc: Scenario, webhook_secret: str) -> None:
        self.feed = PasteFeedSite(sc.pastes)
        self.directory = StaticSite(sc.directory_root, "directory")
        self.rendered = StaticSite(sc.rendered_root, "forum")
        self.watch = StaticSite(sc.watch_root, "file-host")
        self.webhook = WebhookReceiver(webhook_secret)
        self._all: list[LocalSite] = [self.feed, self.directory, self.rendered, self.watch,
                                      self.webhook]

    def start(self) -> SiteUrls:
        for s in self._all:
            s.start()
        return SiteUrls(feed=self.feed.url, directory=self.directory.url,
                        rendered=self.rendered.url, watch=self.watch.url,
                        webhook=self.webhook.hook_url)

    def stop(self) -> None:
        for s in self._all:
            s.stop()


def _crawl_timeout(settings: Settings, name: str) -> float:
    """The daemon's limit for one crawl: the source's schedule timeout plus its margin."""
    try:
        limit = float(schedules(settings)[name].timeout)
    except Exception:  # the daemon's scheduling not available: the demo's own limit
        limit = 120.0
    return limit + float(getattr(settings.daemon, "timeout_margin", 30.0))


def _crawl_one(settings: Settings, config_path: Path, src: DemoSource,
               on_output: Callable[[str, str], None] | None,
               running: RunningCrawls | None = None) -> SourceOutcome:
    out = SourceOutcome(src.name, src.kind, src.title, str(src.table.get("url")
                                                            or src.table.get("urls", [""])[0]))
    t0 = time.monotonic()
    store = Store(settings.state)
    log_dir = config_path.parent / "logs"
    log_dir.mkdir(exist_ok=True)
    log_file = (log_dir / f"crawl-{src.name}.log").open("a", encoding="utf-8")

    def output(source: str, line: str) -> None:
        log_file.write(line + "\n")  # the crawl's own log, kept with --keep
        if on_output is not None:
            on_output(source, line)

    try:
        res = run_crawl(store, src.name, config_path, timeout=_crawl_timeout(settings, src.name),
                        kill_after=5.0, on_output=output, running=running)
        out.outcome, out.error = res.outcome, res.error
        out.discovered, out.fetched, out.new, out.hits = (res.discovered, res.fetched, res.new,
                                                         res.hits)
    except Exception as exc:  # a crawl that cannot even start is a line in the report
        out.outcome, out.error = "error", f"{type(exc).__name__}: {exc}"[:300]
    finally:
        store.close()
        log_file.close()
    out.duration = time.monotonic() - t0
    return out


def run_demo(root: Path | None = None, *, keep: bool = False, es_url: str | None = None,
             es_backend: str = "elasticsearch", export_rows: int = EXPORT_ROWS,
             progress: Progress = _noop,
             on_crawl_output: Callable[[str, str], None] | None = None) -> DemoRun:
    """Run the whole demo once; ``root`` (created if missing) or a temporary directory.

    The directory is removed afterwards unless ``keep``; the returned :class:`DemoRun`
    is complete either way (it holds no identifiers, only refs and masked forms).
    """
    own_tmp = root is None
    root = Path(tempfile.mkdtemp(prefix="leaksentry-demo-")) if root is None else Path(root)
    if not own_tmp:
        _prepare(root)
    (root / MARKER).write_text("made by `leaksentry demo`; safe to delete\n")
    (root / "README.txt").write_text(LAYOUT)
    t_all = time.monotonic()
    try:
        return _run(root, es_url=es_url, es_backend=es_backend, export_rows=export_rows,
                    progress=progress, on_crawl_output=on_crawl_output, t_all=t_all)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True) if own_tmp else _clean(root)


#: marks a directory the demo made, so a rerun may clear it (and nothing else is touched)
MARKER = ".leaksentry-demo"
_MADE = ("trusted", "sites", "state", "leaksentry.toml", "expected.json",
         "received_alerts.jsonl", "logs", "README.txt", MARKER)
LAYOUT = """\
A `leaksentry demo` run. Everything here is generated; no real patient data.

trusted/                 the trusted side: the fictional register (the only input with
                         plaintext identifiers), the key, the fingerprint file, the
                         security team's age identity, the evidence opened with it and
                         the notification report (notify.xlsx)
sites/                   what the local sites served, the planted leaks among them
leaksentry.toml          the config the crawls ran with (sites were on 127.0.0.1;
                         they stopped when the demo ended)
state/state.db           the state store: hits, documents, outbox, source runs
logs/crawl-NAME.log      each crawl's output
received_alerts.jsonl    what the webhook receiver got (headers and bodies)
expected.json            what each planted item should give (record refs, severity)

Try: leaksentry hits --config leaksentry.toml
     leaksentry status --config leaksentry.toml
"""


def _prepare(root: Path) -> None:
    """A ``--dir`` must be new, empty, or an earlier demo's (which is cleared)."""
    if root.exists() and not root.is_dir():
        raise InputError(f"{root}: --dir exists and is not a directory")
    if root.is_dir() and any(root.iterdir()):
        if not (root / MARKER).exists():
            raise InputError(f"{root}: --dir is not empty and was not made by the demo;"
                             " name a new or empty directory")
        _clean(root, remove_root=False)
    root.mkdir(parents=True, exist_ok=True)


def _clean(root: Path, remove_root: bool = True) -> None:
    """Remove what the demo made in a user-given directory (and the directory if empty)."""
    for name in _MADE:
        p = root / name
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    if remove_root:
        with contextlib.suppress(OSError):
            root.rmdir()


def _run(root: Path, *, es_url: str | None, es_backend: str, export_rows: int,
         progress: Progress, on_crawl_output: Callable[[str, str], None] | None,
         t_all: float) -> DemoRun:
    t = time.monotonic()
    progress("scenario", "start", f"generating a fictional register and {export_rows:,}-row export")
    sc = build_scenario(root, export_rows=export_rows)
    run = DemoRun(sc)
    run.timings["scenario"] = time.monotonic() - t
    leaks = len(sc.leaks())
    progress("scenario", "done",
             f"{sc.register_size:,} fictional patients; {len(sc.items)} items planted"
             f" ({leaks} leaks, {len(sc.items) - leaks} harmless or decoys)")

    t = time.monotonic()
    progress("fingerprints", "start", "keygen + fingerprints build on the register")
    try:
        run.fingerprints = make_fingerprints(sc, MatchingConfig.model_validate(
            matching_table(sc)))
    except RuntimeError as exc:
        run.missing.append(f"fingerprints: {exc}")
        progress("fingerprints", "fail", str(exc))
    else:
        progress("fingerprints", "done", run.fingerprints)
    run.timings["fingerprints"] = time.monotonic() - t

    secret = secrets.token_urlsafe(24)
    sites = DemoSites(sc, secret)
    run.urls = urls = sites.start()
    try:
        progress("sites", "done", "5 local sites on 127.0.0.1 (feed, directory, forum,"
                 " file host, webhook receiver)")
        sources = demo_sources(sc, urls)
        recipient = make_identity(sc.key_path.parent) if run.fingerprints else None
        write_config(sc, urls, webhook_secret=secret, es_url=es_url, es_backend=es_backend,
                     sources=sources, evidence_recipients=[recipient] if recipient else [])
        settings = load_config(sc.config_path)
        progress("config", "done", str(sc.config_path))

        t = time.monotonic()
        runnable = []
        for src in sources:
            why = None
            if run.fingerprints is None:
                why = "no fingerprints"
            elif src.table.get("render") and not Path(settings.crawler.chromium_path).exists():
                why = (f"Chromium not found at {settings.crawler.chromium_path}"
                       " (Debian: apt-get install chromium)")
                run.missing.append(f"chromium: {settings.crawler.chromium_path}")
            if why is None:
                runnable.append(src)
            else:
                run.sources.append(SourceOutcome(src.name, src.kind, src.title, "",
                                                 available=False, outcome="skipped", error=why))
                progress(f"crawl:{src.name}", "skip", why)
        for src in runnable:
            progress(f"crawl:{src.name}", "start", src.title)

        running = None
        if runnable:
            running = RunningCrawls(sc.state_dir / "crawls")

        def one(src: DemoSource) -> SourceOutcome:
            o = _crawl_one(settings, sc.config_path, src, on_crawl_output, running)
            progress(f"crawl:{src.name}", "done" if o.outcome == "ok" else "fail",
                     f"{o.outcome}: {o.fetched} fetched, {o.hits} hits"
                     + (f" ({o.error})" if o.error else ""))
            return o

        pool = ThreadPoolExecutor(max_workers=max(1, len(runnable)))
        try:
            futures = [pool.submit(one, src) for src in runnable]
            run.sources += [f.result() for f in futures]
        except BaseException:  # Ctrl-C: stop the crawls (and their Chromium) at once
            if running is not None:
                running.kill_all_now()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        order = [s.name for s in sources]
        run.sources.sort(key=lambda s: order.index(s.name))
        run.timings["crawls"] = time.monotonic() - t

        _deliver(run, settings, sites.webhook, progress)
        if es_url:
            _drain(run, settings, progress)
        _collect_hits(run, settings)
        if run.hits:
            t = time.monotonic()
            run.evidence = evidence_step(sc, run.hits, settings, progress)
            run.notify = notify_step(sc, settings, progress)
            run.timings["after the alert"] = time.monotonic() - t
    finally:
        sites.stop()
    run.timings["total"] = time.monotonic() - t_all
    return run


def _deliver(run: DemoRun, settings: Settings, receiver: WebhookReceiver,
             progress: Progress) -> None:
    progress("alerts", "start", f"delivering the outbox to channel {WEBHOOK_CHANNEL!r}")
    store = Store(settings.state)
    try:
        plan_health_alerts(store, settings)  # the daemon's health job, as after any cycle
        report = deliver_pending(store, settings)
        # a second pass must find nothing left to send (delivered exactly once)
        again = deliver_pending(store, settings)
        run.delivery = f"{report}; second pass: {again.delivered} delivered"
    finally:
        store.close()
    for d in receiver.unique():
        body = d.body or {}
        alert = body.get("alert") or {}
        run.alerts.append(AlertSeen(
            idempotency_key=d.idempotency_key, event=d.event,
            severity=str(body.get("severity") or alert.get("severity") or ""),
            source=alert.get("source"), url=alert.get("url"),
            matched_records=alert.get("matched_records"), verified=d.verified,
            payload=alert))
    _save_received(run.scenario.root / "received_alerts.jsonl", receiver)
    run.alert_duplicates = receiver.duplicates()
    run.alerts_rejected = sum(1 for d in receiver.deliveries if not d.verified)
    progress("alerts", "done", f"{len(run.alerts)} alert(s) received and verified by the"
             " local webhook receiver")


def _save_received(path: Path, receiver: WebhookReceiver) -> None:
    """What the receiver got, as it got it (headers and body), for `--keep` and the tests."""
    with path.open("w", encoding="utf-8") as fh:
        for d in receiver.deliveries:
            fh.write(json.dumps({"verified": d.verified, "reason": d.reason,
                                 "headers": d.headers,
                                 "body": d.raw.decode("utf-8", "replace")}) + "\n")


def _drain(run: DemoRun, settings: Settings, progress: Progress) -> None:
    progress("elasticsearch", "start", f"draining the spool into {settings.elasticsearch.url}")
    store = Store(settings.state)
    try:
        rep = drain(store, settings)
    finally:
        store.close()
    run.es = {k: getattr(rep, k, None) for k in ("attempted", "delivered", "duplicates",
                                                 "rejected", "retry_later", "pending", "error")}
    run.es["url"] = settings.elasticsearch.url
    run.es["index_prefix"] = settings.elasticsearch.index_prefix
    ok = getattr(rep, "ok", not run.es["error"])
    progress("elasticsearch", "done" if ok else "fail",
             f"{run.es['delivered']} document(s) indexed, {run.es['pending']} still spooled"
             + (f" ({run.es['error']})" if run.es["error"] else ""))


#: masked matches kept per hit in the summary (the store has them all; the export alone
#: has 112,000, which would make a 12 MB summary)
SHOW_MATCHES = 10


def _trim(hit: dict[str, Any]) -> dict[str, Any]:
    matches = hit.get("matches") or []
    hit["matches_total"] = len(matches)
    hit["matches"] = matches[:SHOW_MATCHES]
    return hit


def _collect_hits(run: DemoRun, settings: Settings) -> None:
    store = Store(settings.state)
    try:
        run.hits = [_trim(h.to_json()) for h in query_hits(store.conn, limit=10_000)]
        run.documents = count_documents(store.conn)
    finally:
        store.close()
    run.hits.sort(key=lambda h: (-h["matched_records"], h["url"]))

