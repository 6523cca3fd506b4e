"""Alert payload -> words: subject, plain text, HTML, Slack blocks, a Teams
Adaptive Card. Every channel says the same thing; only the markup differs.

Input is the stored payload (masked identifiers and metadata only), so
nothing rendered here can contain document content.
"""

from __future__ import annotations

import html
from typing import Any

from leaksentry.store.outbox import HIT, RESIGHTING

_SEVERITY_TITLE = {"critical": "CRITICAL", "high": "HIGH", "medium": "MEDIUM", "low": "LOW"}


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def subject(p: dict[str, Any]) -> str:
    sev = _SEVERITY_TITLE.get(p.get("severity", ""), str(p.get("severity", "")).upper())
    kind = p.get("kind")
    aid = p.get("alert_id", "?")
    if kind == "hit":
        return (f"[LeakSentry {sev}] {p['matched_records']} register record(s) in an upload"
                f" on {p['source']} (alert {aid})")
    if kind == RESIGHTING:
        return (f"[LeakSentry {sev} re-sighting] alert {p.get('thread_id')} seen again on"
                f" {p['source']} (alert {aid})")
    if kind == "digest":
        return f"[LeakSentry digest] {p['count']} alert(s) on channel {p['channel']}"
    if kind == "health":
        return f"[LeakSentry {sev}] source {p['source']} is unhealthy (alert {aid})"
    if kind == "recovery":
        return f"[LeakSentry] source {p['source']} has recovered (alert {aid})"
    return f"[LeakSentry test] {p.get('message', 'test alert')}"


def facts(p: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) lines, in reading order, for the hit-like kinds and the others."""
    kind = p.get("kind")
    if kind in (HIT, RESIGHTING):
        out = [("Severity", str(p.get("severity"))), ("Source", str(p.get("source"))),
               ("URL", str(p.get("url")))]
        if kind == RESIGHTING:
            out.insert(0, ("Re-sighting of alert", str(p.get("thread_id"))))
            if p.get("hit_severity"):
                out.insert(2, ("Document severity", f"{p['hit_severity']} (already alerted)"))
        out += [
            ("File", f"{p.get('filename') or '-'} ({p.get('content_type') or 'unknown type'},"
                     f" {_size(p.get('size'))})"),
            ("SHA-256", str(p.get("sha256"))),
            ("Matched records", str(p.get("matched_records"))),
            ("Kinds found", ", ".join(p.get("kinds") or []) or "-"),
        ]
        idents = p.get("identifiers") or []
        if idents:
            shown = ", ".join(
                f"{i['masked']} ({i['kind']}, record {i.get('record_ref') or 'not in register'})"
                for i in idents)
            more = p.get("identifiers_total", len(idents)) - len(idents)
            out.append(("Identifiers (masked)", shown + (f" and {more} more" if more > 0 else "")))
        refs, total = p.get("record_refs") or [], p.get("record_refs_total", 0)
        if total:
            line = ", ".join(refs)
            if total > len(refs):
                line += f" ... ({total} in all; full list: {p.get('full_list')})"
            out.append(("Record refs", line))
        if p.get("exposed_categories"):
            out.append(("Exposed", ", ".join(p["exposed_categories"])))
        if p.get("exposed_fields"):
            out.append(("Exposed fields", ", ".join(p["exposed_fields"])))
        unmatched = p.get("unmatched_valid") or {}
        if unmatched:
            out.append(("Valid identifiers not in the register",
                        ", ".join(f"{k}: {n}" for k, n in unmatched.items())))
        ev = p.get("evidence")
        if ev:
            out.append(("Evidence", f"kept encrypted in the vault (hit {p.get('hit_id')};"
                                    f" leaksentry evidence open)" if ev.get("stored")
                        else f"not kept: {ev.get('error') or 'unknown reason'}"))
        out += [("First seen", str(p.get("first_seen"))), ("Seen at", str(p.get("seen_at")))]
        if p.get("kibana_url"):
            out.append(("Kibana", p["kibana_url"]))
        out.append(("Alert id", str(p.get("alert_id"))))
        return out
    if kind in ("health", "recovery"):
        out = [("Source", str(p.get("source"))),
               ("State", "healthy again" if kind == "recovery" else "unhealthy")]
        if p.get("reason"):
            out.append(("Reason", str(p["reason"])))
        if p.get("last_error"):
            out.append(("Last error", str(p["last_error"])))
        out += [("Since", str(p.get("since"))), ("Last success", str(p.get("last_success"))),
                ("Alert id", str(p.get("alert_id")))]
        return out
    if kind == "digest":
        return [("Alerts", str(p.get("count"))),
                ("Period", f"{p.get('period_start')} to {p.get('period_end')}")]
    return [("Message", str(p.get("message"))), ("Sent at", str(p.get("sent_at")))]


def digest_lines(p: dict[str, Any]) -> list[str]:
    lines = []
    for i in p.get("items") or []:
        what = ("re-sighting of alert " + str(i.get("thread_id"))
                if i.get("kind") == RESIGHTING else f"{i.get('matched_records')} record(s)")
        exposed = ", ".join(i.get("exposed_categories") or [])
        lines.append(f"#{i['alert_id']} {i.get('severity')} {what} on {i.get('source')}:"
                     f" {i.get('url')} (sha256 {str(i.get('sha256'))[:16]}...)"
                     + (f"; exposed: {exposed}" if exposed else ""))
    return lines


def text(p: dict[str, Any]) -> str:
    lines = [subject(p), ""]
    width = max((len(k) for k, _ in facts(p)), default=0)
    lines += [f"{k + ':':<{width + 1}} {v}" for k, v in facts(p)]
    if p.get("kind") == "digest":
        lines += ["", *digest_lines(p), "", f"Full list of affected records: {p.get('full_list')}"]
    lines += ["", "Identifiers are masked; records are named by register reference."]
    return "\n".join(lines) + "\n"


def html_body(p: dict[str, Any]) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><th align=\"left\" valign=\"top\">{e(k)}</th><td>"
        + (f"<a href=\"{e(v)}\">Open in Kibana</a>" if k == "Kibana" and v.startswith("http")
           else e(v))
        + "</td></tr>"
        for k, v in facts(p)
    )
    items = ""
    if p.get("kind") == "digest":
        items = "<ul>" + "".join(f"<li>{e(line)}</li>" for line in digest_lines(p)) + "</ul>"
    return (f"<html><body><h2>{e(subject(p))}</h2><table>{rows}</table>{items}"
            "<p><small>Identifiers are masked; records are named by register reference."
            "</small></p></body></html>")


#: Slack attachment colour bar per severity (a re-sighting is "low": grey)
SLACK_COLOUR = {"critical": "#b00020", "high": "#e8590c", "medium": "#f2c744", "low": "#9e9e9e"}

#: mrkdwn markers -> look-alikes that do not format (Slack has no escape character)
_MRKDWN_LOOKALIKE = {"*": "\u2217", "_": "\u02cd", "~": "\u223c", "`": "\u02cb"}


def mrkdwn_escape(text: str) -> str:
    """Text safe inside Slack mrkdwn: ``&``, ``<`` and ``>`` as entities (so nothing can
    become a link, a mention or a ``<!channel>``), and ``* _ ~ ` `` replaced by
    look-alikes wherever they could open or close formatting, i.e. unless both
    neighbours are letters or digits (``ward_list.csv`` keeps its underscore;
    ``A12****(3)`` does not turn bold)."""
    out = []
    for i, c in enumerate(text):
        if c in _MRKDWN_LOOKALIKE:
            before = text[i - 1] if i else ""
            after = text[i + 1] if i + 1 < len(text) else ""
            out.append(c if before.isalnum() and after.isalnum() else _MRKDWN_LOOKALIKE[c])
        elif c == "&":
            out.append("&amp;")
        elif c == "<":
            out.append("&lt;")
        elif c == ">":
            out.append("&gt;")
        else:
            out.append(c)
    return "".join(out)


def _slack_link(url: str, label: str) -> str:
    return f"<{url.replace('&', '&amp;').replace('<', '%3C').replace('>', '%3E')}|{label}>"


def slack(p: dict[str, Any]) -> dict[str, Any]:
    """An incoming-webhook message: escaped fallback ``text``, a header block, and the
    facts in an attachment whose colour bar is the severity's. ``unfurl_links`` and
    ``unfurl_media`` are off: Slack would otherwise fetch the leak's URL from its own
    servers to build a preview."""
    esc = mrkdwn_escape
    fields = [{"type": "mrkdwn", "text": f"*{esc(k)}*\n" + (
        _slack_link(v, "Open in Kibana") if k == "Kibana" and v.startswith("http") else esc(v))}
        for k, v in facts(p)]
    sections: list[dict[str, Any]] = [
        {"type": "section", "fields": fields[i:i + 10]}  # Slack allows 10 fields per section
        for i in range(0, len(fields), 10)]
    if p.get("kind") == "digest":
        body = "\n".join(esc(x) for x in digest_lines(p))[:2900]
        sections.append({"type": "section", "text": {"type": "mrkdwn", "text": body or "-"}})
    return {
        "text": esc(subject(p)),
        "unfurl_links": False,
        "unfurl_media": False,
        "blocks": [{"type": "header",
                    "text": {"type": "plain_text", "text": subject(p)[:150]}}],
        "attachments": [{"color": SLACK_COLOUR.get(str(p.get("severity")), "#9e9e9e"),
                         "blocks": sections}],
    }


def teams(p: dict[str, Any]) -> dict[str, Any]:
    """A message for a Teams Workflows webhook ("When a Teams webhook request is
    received"): one Adaptive Card attachment."""
    sev = p.get("severity")
    color = {"critical": "Attention", "high": "Attention", "medium": "Warning"}.get(
        str(sev), "Default")
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": subject(p), "weight": "Bolder", "size": "Medium",
         "wrap": True, "color": color},
        {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in facts(p)]},
    ]
    if p.get("kind") == "digest":
        body += [{"type": "TextBlock", "text": line, "wrap": True} for line in digest_lines(p)]
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if p.get("kibana_url"):
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open in Kibana",
                            "url": p["kibana_url"]}]
    return {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
         "content": card}]}
