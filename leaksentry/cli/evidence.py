"""CLI commands: `evidence list | open | export | purge` — the encrypted evidence vault.

`list`, `export` and `purge` run anywhere (they never decrypt). `open` runs on the
trusted side, with an age identity that never sits on the crawler host: it checks the
sidecar's signature and the ciphertext's hash first, decrypts, checks the document's
sha256, writes the file 0600 (never to a terminal) and records who opened what.

Imports inside the commands: `leaksentry --help` loads neither the vault (pyrage),
the key nor the config models (durations) (start-up, bench/bench_cli.py).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from leaksentry.cli.common import ConfigOption, console, settings
from leaksentry.errors import ConfigError, LeakSentryError
from leaksentry.store import Store
from leaksentry.store import evidence as rows

if TYPE_CHECKING:
    from leaksentry.config import Settings
    from pipelines.sinks.vault import Sealed

BUNDLE_README = """\
leaksentry evidence bundle

  {age}   the document, encrypted with age to the security team's public keys
  {meta}  its sidecar: sha256 and size of the document, source, redacted URL, time
             fetched, recipients' key fingerprints; signed (HMAC) with the
             installation's key

Decrypt on the trusted side, with an identity that is one of the recipients:
  leaksentry evidence open {bundle} --identity KEYFILE --out document.bin --key KEY
or with age itself:
  age -d -i KEYFILE -o document.bin {age}
then compare `sha256sum document.bin` with "sha256" in {meta}.
"""


def _open_store(s: Settings) -> Store:
    return Store(s.state)


def _age(stored_at: datetime) -> str:
    from scheduler.schedule import human_duration  # the one place durations are phrased

    return human_duration((datetime.now(UTC) - stored_at).total_seconds())


def _key(s: Settings, key: Path | None) -> bytes:
    from pipelines.match.keys import read_key

    path = key or s.matching.key
    if path is None:
        raise ConfigError("no key: give --key or set matching.key (evidence sidecars are"
                          " signed with it)")
    return read_key(path)


def _who() -> tuple[str, str]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid {os.getuid()}"
    return user, socket.gethostname()


def register(app: typer.Typer) -> None:
    ev = typer.Typer(help="The encrypted evidence vault: list, open (trusted side), export,"
                          " purge.", no_args_is_help=True)
    app.add_typer(ev, name="evidence")

    @ev.command("list")
    def list_cmd(
        as_json: Annotated[bool, typer.Option("--json", help="JSON Lines.")] = False,
        config: ConfigOption = None,
    ) -> None:
        """Evidence kept: hit, size, sha256 of the document, age, recipients."""

        s = settings(config)
        store = _open_store(s)
        try:
            entries = rows.all_rows(store.conn)
        finally:
            store.close()
        if as_json:
            for e in entries:
                print(json.dumps({"hit_id": e.hit_id, "file": e.file, "sha256": e.sha256,
                                  "size": e.size, "stored_at": e.stored_at.isoformat(),
                                  "recipients": e.recipients}))
            return
        if not entries:
            console.print("no evidence kept" + ("" if s.evidence.enabled else
                                                " ([evidence] recipients is not set)"))
            return
        table = Table(title=f"evidence ({len(entries)}) in {s.evidence_dir}")
        for col in ("hit", "size", "sha256", "age", "recipients"):
            table.add_column(col, overflow="fold")
        for e in entries:
            table.add_row(str(e.hit_id), f"{e.size:,}", e.sha256[:16] + "…", _age(e.stored_at),
                          ", ".join(e.recipients))
        console.print(table)

    @ev.command("open")
    def open_cmd(
        hit: Annotated[str, typer.Argument(
            help="A hit id in this installation's vault, or an exported bundle.zip.")],
        identity: Annotated[Path, typer.Option(
            "--identity", "-i", help="age identity file (AGE-SECRET-KEY-1…) or SSH private"
                                     " key of one of the recipients.")],
        out: Annotated[Path, typer.Option(
            "--out", "-o", help="Where to write the document (created 0600; never a"
                                " terminal; '-' for a pipe).")],
        key: Annotated[Path | None, typer.Option(
            help="Key file that signed the sidecar (default: matching.key).")] = None,
        config: ConfigOption = None,
    ) -> None:
        """Decrypt one piece of evidence on the trusted side and check it."""
        from pipelines.sinks.vault import decrypt_to, load_identities

        s = settings(config)
        k = _key(s, key)
        identities = load_identities(identity)
        with _sealed(s, hit, k) as (hit_id, sealed):
            if str(out) == "-":
                if sys.stdout.isatty():
                    raise LeakSentryError("--out -: refusing to write a leaked document to a"
                                          " terminal; redirect to a file or give --out FILE")
                size = decrypt_to(sealed, identities, sys.stdout.buffer)
                sys.stdout.buffer.flush()
                target = "stdout"
            else:
                size = _decrypt_file(sealed, identities, out)
                target = str(out)
            user, host = _who()
            store = _open_store(s)
            try:

                with store.transaction() as tx:
                    rows.audit(tx, hit_id, "open", user, host, target, datetime.now(UTC))
            finally:
                store.close()
        print(f"hit {hit_id}: {size:,} bytes written to {target} (sha256 verified;"
              f" recorded in the audit log as opened by {user} on {host})", file=sys.stderr)

    @ev.command("export")
    def export_cmd(
        hit: Annotated[int, typer.Argument(help="Hit id.")],
        out: Annotated[Path, typer.Option("--out", "-o", help="bundle.zip to write.")],
        config: ConfigOption = None,
    ) -> None:
        """Write the still-encrypted document and its sidecar into a zip, for handing over."""
        from pipelines.sinks.vault import file_names

        s = settings(config)
        store = _open_store(s)
        try:
            row = rows.get(store.conn, hit)
            if row is None:
                raise LeakSentryError(f"hit {hit}: no evidence kept (see `leaksentry evidence"
                                      " list`)")
            age_name, meta_name = file_names(hit)
            src = s.evidence_dir
            if not (src / age_name).is_file() or not (src / meta_name).is_file():
                raise LeakSentryError(f"{src / age_name}: evidence file missing")
            fd = _create_0600(out)
            with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
                zf.write(src / age_name, age_name)
                zf.write(src / meta_name, meta_name)
                zf.writestr("README.txt", BUNDLE_README.format(age=age_name, meta=meta_name,
                                                               bundle=out.name))
            user, host = _who()
            with store.transaction() as tx:
                rows.audit(tx, hit, "export", user, host, str(out), datetime.now(UTC))
        finally:
            store.close()
        console.print(f"hit {hit}: encrypted evidence and sidecar written to {out}",
                      highlight=False)

    @ev.command("purge")
    def purge_cmd(
        hit: Annotated[list[int] | None, typer.Option(
            "--hit", help="Purge this hit's evidence (repeatable).")] = None,
        older_than: Annotated[str | None, typer.Option(
            help="Purge evidence stored longer ago than this (e.g. 90d); default: the"
                 " configured [evidence] retention.")] = None,
        config: ConfigOption = None,
    ) -> None:
        """Delete evidence past its retention (or of given hits), files first, then rows."""
        from leaksentry.config.base import parse_duration
        from pipelines.sinks.vault import Vault

        s = settings(config)
        vault = Vault.from_settings(s)
        if vault is None:
            raise ConfigError("[evidence] recipients is not set: there is no vault to purge")
        age = None
        if older_than is not None:
            try:
                age = parse_duration(older_than)
            except ValueError as exc:
                raise LeakSentryError(f"--older-than: {exc}") from None
        store = _open_store(s)
        try:
            with store.transaction() as tx:
                done = vault.purge(tx, older_than=age, hit_ids=hit or None)
                user, host = _who()
                for h in done:

                    rows.audit(tx, h, "purge", user, host, None, datetime.now(UTC))
            swept = vault.sweep(store.conn)
        finally:
            store.close()
        console.print(f"purged evidence of {len(done)} hit(s); removed {swept.temp_files}"
                      f" unfinished and {swept.orphans} orphaned file(s)", highlight=False)


def _create_0600(path: Path) -> int:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise LeakSentryError(f"{path}: already exists; not overwritten") from None
    except OSError as exc:
        raise LeakSentryError(f"{path}: cannot create: {exc.strerror}") from None
    if os.isatty(fd):
        os.close(fd)
        raise LeakSentryError(f"{path}: is a terminal; refusing to write a leaked document"
                              " to it")
    return fd


def _decrypt_file(sealed: Sealed, identities: list[Any], out: Path) -> int:
    """Decrypt next to ``out`` and rename into place only once the sha256 checks out."""
    from pipelines.sinks.vault import decrypt_to

    if out.exists():  # devices and terminals included: nothing existing is written to
        raise LeakSentryError(f"{out}: already exists; not overwritten")
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    fd = _create_0600(tmp)
    try:
        with os.fdopen(fd, "wb") as fh:
            size = decrypt_to(sealed, identities, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return size


@contextlib.contextmanager
def _sealed(s: Settings, hit: str, key: bytes) -> Iterator[tuple[int, Sealed]]:
    """(hit id, Sealed) for a hit in the vault or an exported bundle.zip."""
    from pipelines.sinks.vault import file_names, iter_bundle, load_sealed

    if hit.isdigit():
        hit_id = int(hit)
        age_name, meta_name = file_names(hit_id)
        meta_path = s.evidence_dir / meta_name
        try:
            meta_bytes = meta_path.read_bytes()
        except FileNotFoundError:
            raise LeakSentryError(f"hit {hit_id}: no evidence in {s.evidence_dir}") from None
        yield hit_id, load_sealed(s.evidence_dir / age_name, meta_bytes, key)
        return
    bundle = Path(hit)
    members = dict(iter_bundle(bundle))
    metas = [n for n in members if n.startswith("hit-") and n.endswith(".json")]
    if len(metas) != 1 or metas[0][:-5] + ".age" not in members:
        raise LeakSentryError(f"{bundle}: not a leaksentry evidence bundle")
    with tempfile.TemporaryDirectory(prefix="leaksentry-evidence-") as tmpdir:
        age_path = Path(tmpdir) / (metas[0][:-5] + ".age")
        fd = _create_0600(age_path)
        with os.fdopen(fd, "wb") as fh:
            fh.write(members[age_path.name])
        sealed = load_sealed(age_path, members[metas[0]], key)
        yield int(sealed.meta["hit_id"]), sealed
