"""The evidence vault: hit documents kept encrypted to the security team's age keys.

Documents are scanned in memory and the upload may vanish from the platform before an
analyst looks; a clear copy on the crawler host would be the second copy leaksentry
exists to avoid. So a hit document at or above ``[evidence] min_severity`` is
encrypted with age (pyrage) to public keys only: the crawler host can write evidence
and never read it. ``leaksentry evidence open`` decrypts on the trusted side.

Files, named from the hit id (never from the upload's name)::

    hit-00000042.age    the age-encrypted document
    hit-00000042.json   sidecar: sha256/size of the plaintext, sha256 of the
                        ciphertext, source, redacted URL, fetched-at, recipients'
                        key fingerprints; HMAC-signed under the instance key

Atomicity: both files are written to ``.tmp-<pid>-…`` names, fsynced and renamed into
place inside the hit's store transaction, before its row is committed. A committed row
therefore always has complete files; a crash leaves at most temp files (removed by
:meth:`Vault.sweep` once their writer is dead) or renamed files without a row (removed
once older than a grace period).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import io
import json
import os
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pyrage

from leaksentry.config.evidence import read_recipients
from leaksentry.errors import LeakSentryError
from leaksentry.processes import alive
from leaksentry.redaction import redact
from leaksentry.store import evidence as rows
from leaksentry.store.engine import Connection
from pipelines.match.keys import read_key
from pipelines.model import EvidenceInfo, Finding, Severity, severity_rank

if TYPE_CHECKING:
    from _hashlib import HASH

    from _typeshed import ReadableBuffer

    from leaksentry.config import Settings

FORMAT = "leaksentry-evidence/1"
_SIDECAR_LABEL = b"leaksentry evidence sidecar v1"
#: renamed files without a committed row are removed once older than this
ORPHAN_GRACE = 60.0
_CHUNK = 1 << 20


class EvidenceError(LeakSentryError):
    """Evidence is missing, tampered with, or cannot be decrypted or written."""


def file_names(hit_id: int) -> tuple[str, str]:
    return f"hit-{hit_id:08d}.age", f"hit-{hit_id:08d}.json"


def recipient_fingerprint(recipient: str) -> str:
    """A short name for a public key: ``SHA256:…`` for SSH keys (as ssh-keygen -l
    prints it), the first 16 hex digits of SHA-256 of the key text for age keys."""
    parts = recipient.split()
    if parts and parts[0].startswith("ssh-") and len(parts) > 1:
        try:
            blob = base64.b64decode(parts[1], validate=True)
            fp = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
            return f"ssh:SHA256:{fp}"
        except ValueError:
            pass
    return "age:" + hashlib.sha256(recipient.encode()).hexdigest()[:16]


def _parse_recipient(text: str) -> Any:
    if text.startswith("age1"):
        return pyrage.x25519.Recipient.from_str(text)
    return pyrage.ssh.Recipient.from_str(text)


def sidecar_key(key: bytes) -> bytes:
    return hmac.new(key, _SIDECAR_LABEL, hashlib.sha256).digest()


def _canonical(meta: dict[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in meta.items() if k != "mac"}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=True).encode()


def sign(meta: dict[str, Any], key: bytes) -> dict[str, Any]:
    return {**meta, "mac": hmac.new(sidecar_key(key), _canonical(meta), "sha256").hexdigest()}


def verify_sidecar(data: bytes, key: bytes, where: str) -> dict[str, Any]:
    """The sidecar's fields, or EvidenceError when it is not valid JSON or its MAC does
    not verify under ``key`` (tampered, or written by another installation)."""
    try:
        meta: dict[str, Any] = json.loads(data)  # not a dict: TypeError below
        mac = meta["mac"]
    except (ValueError, KeyError, TypeError):
        raise EvidenceError(f"{where}: not a leaksentry evidence sidecar") from None
    want = hmac.new(sidecar_key(key), _canonical(meta), "sha256").hexdigest()
    if not isinstance(mac, str) or not hmac.compare_digest(mac, want):
        raise EvidenceError(f"{where}: sidecar signature does not verify (tampered with, or"
                            " signed with another key)")
    if meta.get("format") != FORMAT:
        raise EvidenceError(f"{where}: unknown evidence format {meta.get('format')!r}")
    return meta


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class SweepReport:
    temp_files: int = 0
    orphans: int = 0


class Vault:
    """Write side of the vault (public keys and the instance key only)."""

    def __init__(self, directory: Path, recipients: list[str], key: bytes,
                 min_severity: Severity = "high", max_bytes: int = 64 << 20,
                 retention: float = 90 * 86400.0) -> None:
        if not recipients:
            raise EvidenceError("[evidence] recipients: no public key given")
        self.dir = directory
        self.recipient_texts = recipients
        self.recipients = [_parse_recipient(r) for r in recipients]
        self.fingerprints = [recipient_fingerprint(r) for r in recipients]
        self.key = key
        self.min_rank = severity_rank(min_severity)
        self.max_bytes = max_bytes
        self.retention = retention

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault | None:
        """The vault the config asks for, or None when ``[evidence]`` is off."""
        cfg = settings.evidence
        if not cfg.enabled:
            return None
        if settings.matching.key is None:
            raise EvidenceError("[evidence] needs [matching] key: sidecars are signed with it")
        try:
            recipients = read_recipients(cfg.recipients)
            parsed = cls(settings.evidence_dir, recipients, read_key(settings.matching.key),
                         cfg.min_severity, cfg.max_bytes, cfg.retention)
        except (pyrage.RecipientError, ValueError) as exc:
            raise EvidenceError(f"[evidence] recipients: {exc}") from None
        return parsed

    # -- writing ----------------------------------------------------------------
    def wants(self, finding: Finding) -> bool:
        sev = finding.result.severity
        return severity_rank(sev) >= self.min_rank

    def keep(self, tx: Connection, hit_id: int, content: bytes,
             finding: Finding) -> EvidenceInfo:
        """Encrypt ``content`` for hit ``hit_id`` inside the caller's transaction.

        A failure to write (disk full, permissions) is returned as ``stored=False`` with
        the reason: the hit itself must never be lost because its evidence could not be
        kept."""
        sha = hashlib.sha256(content).hexdigest()
        existing = rows.get(tx, hit_id)
        if existing is not None and existing.sha256 == sha:
            return EvidenceInfo(True, sha, existing.size)
        if len(content) > self.max_bytes:
            return EvidenceInfo(False, sha, len(content),
                                f"larger than [evidence] max_bytes ({self.max_bytes} bytes)")
        try:
            self._write(tx, hit_id, content, sha, finding)
        except OSError as exc:
            return EvidenceInfo(False, sha, len(content),
                                f"{self.dir}: cannot write evidence: {exc.strerror or exc}")
        return EvidenceInfo(True, sha, len(content))

    def _write(self, tx: Connection, hit_id: int, content: bytes, sha: str,
               finding: Finding) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        age_name, meta_name = file_names(hit_id)
        stamp = f".tmp-{os.getpid()}-{time.monotonic_ns()}"
        tmp_age, tmp_meta = self.dir / (age_name + stamp), self.dir / (meta_name + stamp)
        try:
            ct_hash = hashlib.sha256()
            with _HashingWriter(tmp_age, ct_hash) as out:
                pyrage.encrypt_io(io.BytesIO(content), out, self.recipients)
            now = datetime.now(UTC)
            meta = sign({
                "format": FORMAT, "hit_id": hit_id, "file": age_name,
                "sha256": sha, "size": len(content), "ciphertext_sha256": ct_hash.hexdigest(),
                "source": finding.source, "url": redact(finding.url) or "",
                "fetched_at": finding.fetched_at.astimezone(UTC).isoformat(),
                "stored_at": now.isoformat(), "recipients": self.fingerprints,
            }, self.key)
            _write_file(tmp_meta, json.dumps(meta, indent=1).encode())
            os.replace(tmp_age, self.dir / age_name)
            os.replace(tmp_meta, self.dir / meta_name)
            _fsync_dir(self.dir)
        finally:
            for p in (tmp_age, tmp_meta):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
        rows.insert(tx, rows.EvidenceRow(hit_id, age_name, sha, len(content),
                                         self.fingerprints, now))

    # -- housekeeping -------------------------------------------------------------
    def sweep(self, conn: Connection, grace: float = ORPHAN_GRACE) -> SweepReport:
        """Remove temp files whose writer is dead and renamed files without a committed
        row older than ``grace`` seconds (a crash between rename and commit)."""
        if not self.dir.is_dir():
            return SweepReport()
        known = rows.files(conn)
        temp = orphans = 0
        now = time.time()
        for p in self.dir.iterdir():
            name = p.name
            if ".tmp-" in name:
                try:
                    pid = int(name.split(".tmp-", 1)[1].split("-", 1)[0])
                except ValueError:
                    pid = -1
                if pid <= 0 or not alive(pid):
                    with contextlib.suppress(FileNotFoundError):
                        p.unlink()
                        temp += 1
                continue
            if not name.startswith("hit-"):
                continue
            age_name = name[:-5] + ".age" if name.endswith(".json") else name
            if age_name in known:
                continue
            with contextlib.suppress(FileNotFoundError):
                if now - p.stat().st_mtime >= grace:
                    p.unlink()
                    orphans += 1
        return SweepReport(temp, orphans)

    def purge(self, conn: Connection, *, older_than: float | None = None,
              hit_ids: list[int] | None = None) -> list[int]:
        """Delete evidence (files, then rows) stored more than ``older_than`` seconds ago,
        or of the given hits. Returns the hit ids purged."""
        if hit_ids is not None:
            targets = [r for r in (rows.get(conn, h) for h in hit_ids) if r is not None]
        else:
            age = self.retention if older_than is None else older_than
            targets = rows.older_than(conn, datetime.now(UTC) - timedelta(seconds=age))
        done = []
        for row in targets:
            for name in file_names(row.hit_id):
                with contextlib.suppress(FileNotFoundError):
                    (self.dir / name).unlink()
            rows.delete(conn, row.hit_id)
            done.append(row.hit_id)
        return done


class _HashingWriter(io.RawIOBase):
    """A file opened 0600 that hashes what is written and is fsynced on close."""

    def __init__(self, path: Path, digest: HASH) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self._digest = digest

    def writable(self) -> bool:
        return True

    def write(self, b: ReadableBuffer) -> int:
        view = memoryview(b)
        self._digest.update(view)
        n = 0
        while n < len(view):
            n += os.write(self._fd, view[n:])
        return len(view)

    def close(self) -> None:
        if not self.closed:
            try:
                os.fsync(self._fd)
            finally:
                os.close(self._fd)
        super().close()

    def __enter__(self) -> _HashingWriter:
        return self


def _write_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


# -- trusted side ---------------------------------------------------------------------

def load_identities(path: Path) -> list[Any]:
    """age identities (``AGE-SECRET-KEY-1…`` lines) or an SSH private key file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EvidenceError(f"{path}: cannot read identity file: {exc.strerror}") from None
    if b"PRIVATE KEY-----" in data:
        try:
            return [pyrage.ssh.Identity.from_buffer(data)]
        except pyrage.IdentityError as exc:
            raise EvidenceError(f"{path}: not a usable SSH private key: {exc}") from None
    out = []
    for line in data.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if line.upper().startswith("AGE-SECRET-KEY-"):
            try:
                out.append(pyrage.x25519.Identity.from_str(line))
            except pyrage.IdentityError:
                raise EvidenceError(f"{path}: malformed age identity line") from None
    if not out:
        raise EvidenceError(f"{path}: no age identity (AGE-SECRET-KEY-1…) in the file")
    return out


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class Sealed:
    """One piece of evidence as found on disk (vault directory or export bundle)."""

    ciphertext: Path
    meta: dict[str, Any]


def load_sealed(age_path: Path, meta_bytes: bytes, key: bytes) -> Sealed:
    """Check the sidecar's signature and the ciphertext's hash before anything is
    decrypted: a tampered file is refused with a clear error."""
    meta = verify_sidecar(meta_bytes, key, f"{age_path.name[:-4]}.json")
    if not age_path.is_file():
        raise EvidenceError(f"{age_path}: evidence file missing")
    if _sha256_file(age_path) != meta.get("ciphertext_sha256"):
        raise EvidenceError(f"{age_path}: ciphertext does not match its sidecar (tampered"
                            " with or truncated)")
    return Sealed(age_path, meta)


def decrypt_to(sealed: Sealed, identities: list[Any], out: IO[bytes]) -> int:
    """Decrypt into ``out`` and check the plaintext's sha256 against the sidecar."""
    h = hashlib.sha256()

    class _Tee(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, b: ReadableBuffer) -> int:
            h.update(b)
            return out.write(b) or memoryview(b).nbytes

    with open(sealed.ciphertext, "rb") as fh:
        try:
            pyrage.decrypt_io(fh, _Tee(), identities)
        except pyrage.DecryptError as exc:
            raise EvidenceError(f"{sealed.ciphertext}: cannot decrypt: {exc} (is the"
                                " identity one of the recipients?)") from None
    if h.hexdigest() != sealed.meta["sha256"]:
        raise EvidenceError(f"{sealed.ciphertext}: decrypted document does not match the"
                            " sha256 in its sidecar")
    return int(sealed.meta["size"])


def iter_bundle(path: Path) -> Iterator[tuple[str, bytes]]:
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.file_size > (1 << 31):
                    raise EvidenceError(f"{path}: member too large for an evidence bundle")
                yield info.filename, zf.read(info)
    except zipfile.BadZipFile:
        raise EvidenceError(f"{path}: not an evidence bundle (zip)") from None
