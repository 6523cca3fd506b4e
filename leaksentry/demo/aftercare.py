"""The demo's "after the alert" steps: the evidence vault and the notification report.

The crawler side of the demo is configured with the security team's age *public* key
only; the identity that opens evidence lives in ``trusted/`` with the register, as it
would on the trusted machine. Both steps call the same functions as
``leaksentry evidence open`` and ``leaksentry notify``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyrage

from leaksentry.demo.scenario import Scenario
from leaksentry.store import Store
from leaksentry.store import evidence as rows
from pipelines.match.keys import read_key
from pipelines.notify import RegisterSpec, affected, join_register, summarise, write_report
from pipelines.sinks.local import query_hits
from pipelines.sinks.vault import decrypt_to, file_names, load_identities, load_sealed

if TYPE_CHECKING:
    from leaksentry.config import Settings

Progress = Callable[[str, str, str], None]

IDENTITY = "soc-identity.txt"
NOTIFY_REPORT = "notify.xlsx"


def make_identity(trusted: Path) -> str:
    """A fresh age identity for the demo's security team; returns its public key."""
    ident = pyrage.x25519.Identity.generate()
    trusted.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(trusted / IDENTITY, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"# the demo security team's age identity (trusted side only)\n{ident}\n")
    return str(ident.to_public())


def evidence_step(sc: Scenario, hits: list[dict[str, Any]], settings: Settings,
                  progress: Progress) -> dict[str, Any]:
    """List what the vault kept and open the top hit's evidence on the "trusted side";
    returns what the report shows (counts, hit ids, a path)."""
    progress("evidence", "start", "the vault: encrypted hit documents")
    store = Store(settings.state)
    try:
        kept = rows.all_rows(store.conn)
    finally:
        store.close()
    top = max(hits, key=lambda h: h["matched_records"], default=None)
    if top is None or not kept:
        progress("evidence", "fail", f"{len(kept)} document(s) kept; nothing to open")
        return {"kept": len(kept), "opened": None, "verified": False}
    trusted = sc.key_path.parent
    age_name, meta_name = file_names(top["hit_id"])
    vault = settings.evidence_dir
    sealed = load_sealed(vault / age_name, (vault / meta_name).read_bytes(),
                         read_key(sc.key_path))  # the key the demo config names
    out = trusted / f"evidence-hit-{top['hit_id']}.bin"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        size = decrypt_to(sealed, load_identities(trusted / IDENTITY), fh)
    verified = hashlib.sha256(out.read_bytes()).hexdigest() == top["sha256"]
    progress("evidence", "done" if verified else "fail",
             f"{len(kept)} hit document(s) kept encrypted to the SOC's public key; the"
             f" {top['severity']} hit opened on the trusted side: {size:,} bytes,"
             f" sha256 {'verified' if verified else 'MISMATCH'}")
    return {"kept": len(kept), "hits": [e.hit_id for e in kept], "opened": top["hit_id"],
            "size": size, "verified": verified, "path": str(out)}


def notify_step(sc: Scenario, settings: Settings, progress: Progress) -> dict[str, Any]:
    """The notification report from the demo register, checked against the fingerprints;
    returns its counts and path."""
    progress("notify", "start", "joining record refs to the register (trusted side)")
    store = Store(settings.state)
    try:
        hits = [h.to_json() for h in query_hits(store.conn, limit=1 << 31)]
    finally:
        store.close()
    people, leaks = affected(hits)
    spec = RegisterSpec(sc.register, ref_column="ref", hkid_column="hkid", hn_column="hn",
                        include=["name", "gender"])
    included, verified = join_register(people, spec, settings.matching,
                                       read_key(sc.key_path), sc.fingerprints_path)
    summary = summarise(people, leaks)
    out = sc.key_path.parent / NOTIFY_REPORT
    write_report(out, included, people, summary)
    expected = {r for item in sc.leaks() for r in item.refs}
    complete = set(people) == expected
    progress("notify", "done" if complete else "fail",
             f"{summary.people:,} affected people in {summary.leaks} leak(s) -> {out.name}"
             f" (register checked against the fingerprints for {verified or 0:,} rows)")
    return {"people": summary.people, "leaks": summary.leaks, "verified_rows": verified,
            "expected_people": len(expected), "complete": complete, "path": str(out),
            "categories": dict(summary.per_category)}

