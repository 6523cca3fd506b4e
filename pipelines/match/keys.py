"""The HMAC key: 32 random bytes in a file of its own, readable by its owner only.

The key never leaves the trusted side's control; the fingerprint file alone
reveals nothing. A key id (an HMAC of a fixed label, not the key) goes into
fingerprint file headers so a file made with another key is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from leaksentry.errors import KeyFileError

KEY_BYTES = 32
_ID_LABEL = b"leaksentry key id v1"
_MAC_LABEL = b"leaksentry fingerprint file mac v1"


def generate_key(path: Path | str) -> str:
    """Write a new key (mode 0600, never overwriting); return its key id."""
    path = Path(path)
    key = secrets.token_bytes(KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path}: already exists; refusing to overwrite a key") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot create key file: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)  # in case the umask or filesystem widened it
        os.write(fd, key)
    finally:
        os.close(fd)
    return key_id(key)


def read_key(path: Path | str) -> bytes:
    """Read a key file, refusing one that group or others may access."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: key file not found") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read key file: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"{path}: key file is not a regular file")
    if st.st_mode & 0o077:
        raise KeyFileError(
            f"{path}: key file is accessible by group or others (mode "
            f"{stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read key file: {exc.strerror}") from None
    if len(data) == KEY_BYTES:
        return data
    text = data.strip()
    if len(text) == 2 * KEY_BYTES:  # hex, for keys handed over as text
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            pass
    raise KeyFileError(f"{path}: not a leaksentry key (expected {KEY_BYTES} bytes)")


def key_id(key: bytes) -> str:
    """16 hex characters naming the key without revealing it."""
    return hmac.new(key, _ID_LABEL, hashlib.sha256).hexdigest()[:16]


def mac_key(key: bytes) -> bytes:
    """A separate key for authenticating fingerprint files."""
    return hmac.new(key, _MAC_LABEL, hashlib.sha256).digest()
