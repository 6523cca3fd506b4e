"""Showing a demo run with Rich: crawls, hits, planted items found, alerts, next steps.

Only masked identifiers and register refs reach the screen; everything shown
comes from the state store and the webhook receiver, not from the scenario.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console, Group, JustifyMethod
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from leaksentry.demo.runner import DemoRun
from leaksentry.demo.scenario import PlantedItem
from pipelines.model import is_severity, severity_rank

SEVERITY_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow",
                  "low": "cyan", "none": "dim"}


@dataclass(frozen=True, slots=True)
class ItemCheck:
    item: PlantedItem
    hits: list[dict[str, Any]]

    @property
    def found_refs(self) -> set[str]:
        return {r for h in self.hits for r in h.get("record_refs", [])}

    @property
    def severity(self) -> str:
        return self.hits[0]["severity"] if self.hits else "none"

    @property
    def ok(self) -> bool:
        if not self.item.leak:
            return not self.hits
        return self.found_refs == set(self.item.refs) and self.severity == self.item.severity


def hits_for(item: PlantedItem, hits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [h for h in hits if item.marker in (h.get("url") or "")
            or item.marker == (h.get("filename") or "")]


def check_items(run: DemoRun) -> list[ItemCheck]:
    return [ItemCheck(it, hits_for(it, run.hits)) for it in run.scenario.items]


def run_ok(run: DemoRun, checks: list[ItemCheck] | None = None) -> bool:
    """Every planted item as expected, nothing missing, alerts clean, indexing (if asked) ok."""
    checks = check_items(run) if checks is None else checks
    es_ok = run.es is None or (not run.es.get("error") and not run.es.get("pending"))
    after_ok = ((run.evidence is None or run.evidence.get("verified"))
                and (run.notify is None or run.notify.get("complete")))
    return (bool(run.sources) and all(c.ok for c in checks) and not run.missing
            and run.alert_duplicates == 0 and run.alerts_rejected == 0 and es_ok
            and bool(after_ok))


def _sev(s: str) -> Text:
    return Text(s, style=SEVERITY_STYLE.get(s, ""))


def _refs(refs: list[str], n: int = 4) -> str:
    if not refs:
        return "-"
    shown = ", ".join(refs[:n])
    return shown + (f" … (+{len(refs) - n:,})" if len(refs) > n else "")


def sources_table(run: DemoRun) -> Group:
    """The crawls, then one line per crawl that did not go well (long errors would
    wreck the table)."""
    t = Table(title="Crawls (one cycle of each source)", box=box.SIMPLE_HEAVY, title_justify="left")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("source", "left"), ("kind", "left"), ("outcome", "left"), ("discovered", "right"),
        ("fetched", "right"), ("new", "right"), ("hits", "right"), ("time", "right"))
    for col, just in columns:
        t.add_column(col, justify=just)
    notes: list[Text] = []
    for s in run.sources:
        if not s.available:
            outcome = Text("not available yet", style="yellow")
        elif s.outcome == "ok":
            outcome = Text("ok", style="green")
        else:
            outcome = Text(s.outcome, style="red")
        if s.error:
            notes.append(Text.assemble((f"  {s.name}: ", "bold"), s.error))
        t.add_row(s.name, s.kind, outcome, str(s.discovered), str(s.fetched), str(s.new),
                  str(s.hits), f"{s.duration:.1f}s" if s.available else "")
    return Group(t, *notes)


def _path(url: str | None) -> str:
    """The document's path on its site (the source column already names the site)."""
    if not url:
        return ""
    rest = url.split("://", 1)[-1]
    return "/" + rest.split("/", 1)[1] if "/" in rest else rest


def hits_table(run: DemoRun) -> Table:
    t = Table(title=f"Hits in the local store ({len(run.hits)})", box=box.SIMPLE_HEAVY,
              title_justify="left")
    t.add_column("severity")
    t.add_column("source", no_wrap=True)
    t.add_column("document", overflow="fold", max_width=40)
    t.add_column("records", justify="right")
    t.add_column("record refs", overflow="fold", max_width=26)
    t.add_column("identifiers (masked)", no_wrap=True)
    for h in run.hits:
        matches = h.get("matches", [])
        masked = ", ".join(m["masked"] for m in matches[:2])
        more = h.get("matches_total", len(matches)) - min(2, len(matches))
        t.add_row(_sev(h["severity"]), h["source"], _path(h["url"]),
                  f"{h['matched_records']:,}", _refs(h.get("record_refs", []), 3),
                  masked + (f"\n+{more:,} more" if more > 0 else ""))
    return t


def items_table(checks: list[ItemCheck]) -> Table:
    t = Table(title="Planted items: what the demo hid, and what leaksentry made of it",
              box=box.SIMPLE_HEAVY, title_justify="left")
    t.add_column("")
    t.add_column("item")
    t.add_column("site")
    t.add_column("expected", justify="right")
    t.add_column("found", justify="right")
    for c in checks:
        it = c.item
        exp = f"{len(it.refs):,} records, {it.severity}" if it.leak else "nothing"
        found = (f"{len(c.found_refs):,} records, {c.severity}" if c.hits else "nothing")
        mark = Text("✓", style="green") if c.ok else Text("✗", style="bold red")
        t.add_row(mark, it.title + (" (decoy)" if it.decoy else ""), it.site, exp, found)
    return t


def alerts_table(run: DemoRun) -> Table:
    t = Table(title=f"Alerts received by the local webhook receiver ({len(run.alerts)})",
              box=box.SIMPLE_HEAVY, title_justify="left")
    t.add_column("severity")
    t.add_column("event")
    t.add_column("source")
    t.add_column("document", overflow="fold", max_width=50)
    t.add_column("records", justify="right")
    t.add_column("signature")
    for a in sorted(run.alerts, key=lambda a: -(a.matched_records or 0)):
        t.add_row(_sev(a.severity), a.event, a.source or "", _path(a.url),
                  f"{a.matched_records:,}" if a.matched_records is not None else "",
                  Text("verified", style="green") if a.verified else Text("bad", style="red"))
    return t


def sample_alert(run: DemoRun) -> Panel | None:
    """The most severe alert as the receiver got it, shortened: masked, refs only."""
    hits = [a for a in run.alerts if a.payload and a.event == "hit"]
    if not hits:
        return None
    a = max(hits, key=lambda a: (severity_rank(a.severity) if is_severity(a.severity) else 0,
                                 a.matched_records or 0))
    p = a.payload
    keep = ("severity", "source", "url", "filename", "matched_records", "kinds", "identifiers",
            "record_refs", "record_refs_total", "full_list", "first_seen")
    short = {k: p[k] for k in keep if k in p}
    if isinstance(short.get("identifiers"), list):
        short["identifiers"] = short["identifiers"][:2] + (["…"] if len(p["identifiers"]) > 2
                                                           else [])
    if isinstance(short.get("record_refs"), list) and len(short["record_refs"]) > 5:
        short["record_refs"] = [*short["record_refs"][:5], "…"]
    body = Text()
    for i, (k, v) in enumerate(short.items()):
        body.append(f"{k}: ", style="bold")
        body.append(json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v)
        if i < len(short) - 1:
            body.append("\n")
    return Panel(body, title="The top alert, as the security team's webhook"
                 " received it (signed, masked, shortened here)", title_align="left",
                 border_style="red")


def next_steps(run: DemoRun, kept: bool) -> Panel:
    sc = run.scenario
    cfg = shlex.quote(str(sc.config_path))
    lines: list[Text | str] = []
    if kept:
        lines += [
            Text.assemble(("Hits: ", "bold"), f"leaksentry hits --config {cfg}",
                          " (add --json for every record ref; refs map back to patients only"
                          " on the trusted side, through the register)"),
            Text.assemble(("Status: ", "bold"), f"leaksentry status --config {cfg}"),
            Text.assemble(("State store (SQLite): ", "bold"), str(run.db_path)),
            Text.assemble(("Crawl logs: ", "bold"), str(sc.root / "logs")),
            Text.assemble(("Config used: ", "bold"), str(sc.config_path)),
        ]
    else:
        lines.append(Text.assemble(("The demo directory was removed. ", "bold"),
                                   "Run `leaksentry demo --keep` to keep it, then "
                                   "`leaksentry hits --config DIR/leaksentry.toml`."))
    lines += [
        Text.assemble(("Elasticsearch/Kibana: ", "bold"),
                      "leaksentry demo --es-url http://localhost:9200 indexes the same hits"
                      " (add [elasticsearch] url = ... to your own leaksentry.toml; then"
                      " `leaksentry es setup` and `leaksentry kibana install --url KIBANA`)."),
        Text.assemble(("Your own data: ", "bold"),
                      "leaksentry keygen --out KEY; leaksentry fingerprints build --key KEY"
                      " --out FP REGISTER.csv; add [[sources]] to leaksentry.toml; leaksentry run"),
    ]
    return Panel(Group(*lines), title="Where to look next", title_align="left",
                 border_style="blue")


def after_the_alert(run: DemoRun, kept: bool = True) -> list[Text]:
    """The evidence vault and the notification report, counts and paths only."""
    out = []
    ev, nt = run.evidence, run.notify
    if ev is not None:
        ok = bool(ev.get("verified"))
        out.append(Text.assemble(
            ("  Evidence: ", "bold"),
            f"{ev['kept']} hit document(s) kept encrypted (age) to the security team's public"
            " key; " + (f"hit {ev['opened']} opened on the trusted side with its identity:"
                        f" {ev.get('size', 0):,} bytes, sha256 "
                        + ("verified" if ok else "MISMATCH") if ev.get("opened") else
                        "none opened"), style="" if ok else "red"))
    if nt is not None:
        ok = bool(nt.get("complete"))
        out.append(Text.assemble(
            ("  Notify: ", "bold"),
            f"{nt['people']:,} affected people (of {nt['expected_people']:,} planted) in"
            f" {nt['leaks']} leak(s), each once, with what was exposed, in "
            + (nt["path"] if kept else "trusted/notify.xlsx (removed with the demo directory;"
               " --keep keeps it)")
            + " — register checked against the fingerprints; the only output with their names",
            style="" if ok else "red"))
    return out


def render(run: DemoRun, console: Console, *, kept: bool) -> bool:
    """Print the report; returns True when every planted item came out as expected."""
    console.print()
    if run.sources:
        console.print(sources_table(run))
    checks = check_items(run)
    if run.hits or run.documents is not None:
        console.print(hits_table(run))
        console.print(items_table(checks))
    if run.alerts or run.delivery:
        console.print(alerts_table(run))
        if run.delivery:
            console.print(Text(f"  outbox: {run.delivery}", style="dim"))
        if (panel := sample_alert(run)) is not None:
            console.print(panel)
    if run.es:
        console.print(Text.assemble(("  Elasticsearch: ", "bold"),
                                    f"{run.es.get('delivered')} document(s) indexed into "
                                    f"{run.es.get('url')} (aliases {run.es['index_prefix']}-hits,"
                                    f" {run.es['index_prefix']}-documents)"
                                    + (f"; error: {run.es['error']}" if run.es.get("error")
                                       else "")))
    for line in after_the_alert(run, kept):
        console.print(line)
    all_ok = run_ok(run, checks)
    if run.missing:
        console.print(Panel("\n".join(f"- {m}" for m in run.missing),
                            title="Not available yet (skipped)", title_align="left",
                            border_style="yellow"))
    found = sum(1 for c in checks if c.item.leak and c.ok)
    leaks = sum(1 for c in checks if c.item.leak)
    decoys_clean = all(c.ok for c in checks if not c.item.leak)
    summary = Text.assemble(
        ("✓ " if all_ok else "✗ ", "bold green" if all_ok else "bold red"),
        f"{found}/{leaks} planted leaks found with the right records and severity; ",
        "no false alarm on harmless items and decoys" if decoys_clean
        else "a harmless item or decoy was reported",
        f"; {len(run.alerts)} alert(s) delivered"
        + (f"; evidence of {run.evidence['kept']} hit(s) kept encrypted"
           if run.evidence and run.evidence.get("verified") else "")
        + (f"; {run.notify['people']:,} people to notify"
           if run.notify and run.notify.get("complete") else "")
        + (f", {run.alert_duplicates} duplicate(s)" if run.alert_duplicates else "")
        + (f", {run.alerts_rejected} rejected" if run.alerts_rejected else "")
        + ("; indexing into Elasticsearch failed" if run.es and (run.es.get("error")
                                                                  or run.es.get("pending"))
           else ""),
        f"; {run.timings.get('total', 0):.1f}s in all.",
    )
    console.print(summary)
    parts = [f"{k} {v:.1f}s" for k, v in run.timings.items() if k != "total"]
    if parts:
        console.print(Text("  time: " + ", ".join(parts), style="dim"))
    console.print(next_steps(run, kept))
    return all_ok
