"""`leaksentry config check`: validate the file, and warn about what would fail later.

Validation errors are one line each and exit 2. Beyond validity, a source
whose URL is (or resolves to) a private, loopback or link-local address is
refused by the crawler's network guard at crawl time unless it sets
``allow_private = true``; ``config check`` says so up front instead (a
warning, exit 0: such a source may be meant for an intranet and the setting
is the operator's call).

Imports inside the command: `leaksentry --help` loads neither the config models
(pydantic) nor the crawler's address policy (start-up, bench/bench_cli.py).
"""

from __future__ import annotations

import socket
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import typer
from rich.text import Text

from leaksentry.cli.common import ConfigOption, console, err_console, settings, shown
from leaksentry.errors import ConfigError

if TYPE_CHECKING:
    from leaksentry.config import Settings

config_app = typer.Typer(help="Validate and inspect the configuration.", no_args_is_help=True)

#: how long `config check` waits for DNS answers, over all names
RESOLVE_BUDGET = 3.0


@config_app.command("check")
def check(config: ConfigOption = None) -> None:
    """Validate a config file; print one line per problem and exit 2 if it is invalid.

    Also warns about sources the crawler would refuse (private or loopback addresses
    without allow_private = true), and about secrets written into the file (rather than
    named by ``*_env``): refused (exit 2) when the file is readable by group or others."""
    s = settings(config)
    where = str(s.path) if s.path else "built-in defaults"
    for line in private_source_warnings(s):
        err_console.print(Text.assemble("warning: ", shown(line)), highlight=False,
                          soft_wrap=True)
    _check_secrets(s)
    console.print(Text.assemble(("ok", "green"), " ", shown(where),
                                f": {len(s.sources)} source(s), state in ",
                                shown(s.state.dir)))


def _check_secrets(s: Settings) -> None:
    from leaksentry.config.secrets import secrets_in_file

    found = secrets_in_file(s)
    if not found or s.path is None:
        return
    mode = stat.S_IMODE(s.path.stat().st_mode)
    for path in found:
        err_console.print(Text.assemble(("warning: ", "yellow"), shown(
            f"{s.path}: {path}: a secret written in the config file")), soft_wrap=True)
    if mode & 0o044:
        raise ConfigError(f"{s.path}: holds {len(found)} secret(s) and is readable by group or"
                          f" others (mode {mode:04o}): chmod 600 it, or move the secrets to"
                          " the environment (*_env)")


def private_source_warnings(s: Settings) -> list[str]:
    """One line per source URL the network guard would refuse at crawl time (the
    source's own policy: allow_private, private_hosts)."""
    # the guard's policy without Scrapy and Twisted
    from crawler.addresses import GuardPolicy, address_class, blocked_reason

    targets: list[tuple[int, str, str, str, int | None, GuardPolicy]] = []
    for i, src in enumerate(s.sources):
        if not src.enabled:
            continue
        policy = GuardPolicy(allow_private=src.allow_private,
                             private_hosts=tuple(src.private_hosts))
        for url in src.all_urls:
            parts = urlsplit(url)
            host = (parts.hostname or "").rstrip(".").lower()
            try:
                port = parts.port or (443 if parts.scheme == "https" else 80)
            except ValueError:
                port = None
            if host:
                targets.append((i, src.name, url, host, port, policy))
    names = {t[3] for t in targets if blocked_reason(t[3]) is None
             and t[3] not in s.crawler.resolve}
    resolved = _resolve_all(names)
    out = []
    for i, name, url, host, port, policy in targets:
        addresses = [host] if blocked_reason(host) else \
            s.crawler.resolve.get(host) or resolved.get(host, [])
        for address in addresses:
            if policy.reason(address, host, port) is None:
                continue
            reason, openable = address_class(address) or ("non-public address", False)
            via = "" if address == host else f" ({host} resolves to {address})"
            if "metadata" in reason:
                advice = "never crawl it"
            elif not openable:
                advice = "the crawler refuses it, even with allow_private = true"
            elif policy.allow_private:
                advice = "the crawler refuses it: add it to the source's private_hosts"
            else:
                advice = "the crawler refuses it unless the source sets allow_private = true"
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
            return sorted({str(i[4][0]) for i in socket.getaddrinfo(name, None,
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
