"""`leaksentry config check`: validate the file, and warn about what would fail later.

Validation errors are one line each and exit 2. Beyond validity, a source
whose URL is (or resolves to) a private, loopback or link-local address is
refused by the crawler's network guard at crawl time unless it sets
``allow_private = true``; ``config check`` says so up front instead (a
warning, exit 0: such a source may be meant for an intranet and the setting
is the operator's call).
"""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import typer

from leaksentry.cli.common import ConfigOption, console, err_console, settings

if TYPE_CHECKING:
    from leaksentry.config import Settings

config_app = typer.Typer(help="Validate and inspect the configuration.", no_args_is_help=True)

#: how long `config check` waits for DNS answers, over all names
RESOLVE_BUDGET = 3.0


@config_app.command("check")
def check(config: ConfigOption = None) -> None:
    """Validate a config file; print one line per problem and exit 2 if it is invalid.

    Also warns about sources the crawler would refuse (private or loopback addresses
    without allow_private = true)."""
    s = settings(config)
    where = str(s.path) if s.path else "built-in defaults"
    for line in private_source_warnings(s):
        err_console.print(f"warning: {line}", highlight=False, markup=False, soft_wrap=True)
    console.print(f"[green]ok[/green] {where}: {len(s.sources)} source(s), state in {s.state.dir}")


def private_source_warnings(s: Settings) -> list[str]:
    """One line per source URL the network guard would refuse at crawl time."""
    from crawler.addresses import blocked_reason  # the guard's policy, without Scrapy

    targets: list[tuple[int, str, str, str]] = []  # (index, name, url, host)
    for i, src in enumerate(s.sources):
        if src.allow_private or not src.enabled:
            continue
        for url in src.all_urls:
            host = (urlsplit(url).hostname or "").rstrip(".").lower()
            if host:
                targets.append((i, src.name, url, host))
    names = {h for *_, h in targets if blocked_reason(h) is None and h not in s.crawler.resolve}
    resolved = _resolve_all(names)
    out = []
    for i, name, url, host in targets:
        addresses = [host] if blocked_reason(host) else \
            s.crawler.resolve.get(host) or resolved.get(host, [])
        for address in addresses:
            reason = blocked_reason(address)
            if reason is None:
                continue
            via = "" if address == host else f" ({host} resolves to {address})"
            advice = "never crawl it" if "metadata" in reason else \
                "the crawler refuses it unless the source sets allow_private = true"
            out.append(f"sources[{i}] ({name}): {url} is a {reason}{via}: {advice}")
            break
    return out


def _resolve_all(names: set[str]) -> dict[str, list[str]]:
    """Addresses of ``names`` within :data:`RESOLVE_BUDGET` (unresolved names are left out:
    the crawl reports them as DNS errors)."""
    if not names:
        return {}

    def one(name: str) -> list[str]:
        try:
            return sorted({i[4][0] for i in socket.getaddrinfo(name, None,
                                                                type=socket.SOCK_STREAM)})
        except (OSError, UnicodeError):
            return []

    out: dict[str, list[str]] = {}
    pool = ThreadPoolExecutor(max_workers=min(8, len(names)))
    futures = {name: pool.submit(one, name) for name in sorted(names)}
    deadline = time.monotonic() + RESOLVE_BUDGET
    try:
        for name, fut in futures.items():
            try:
                out[name] = fut.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                break
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return out


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
