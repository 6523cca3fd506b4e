"""Key files: 0600, never overwritten, group/world-readable ones refused, key ids."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from leaksentry.errors import KeyFileError
from pipelines.match.digest import Digester, digest64
from pipelines.match.keys import KEY_BYTES, generate_key, key_id, read_key


def test_generate_and_read(tmp_path: Path) -> None:
    kid = generate_key(tmp_path / "k")
    st = (tmp_path / "k").stat()
    assert stat.S_IMODE(st.st_mode) == 0o600
    key = read_key(tmp_path / "k")
    assert len(key) == KEY_BYTES and key_id(key) == kid
    generate_key(tmp_path / "k2")
    assert read_key(tmp_path / "k2") != key


def test_refuses_overwrite(tmp_path: Path) -> None:
    generate_key(tmp_path / "k")
    before = (tmp_path / "k").read_bytes()
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        generate_key(tmp_path / "k")
    assert (tmp_path / "k").read_bytes() == before


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_refuses_readable_by_others(tmp_path: Path, mode: int) -> None:
    generate_key(tmp_path / "k")
    os.chmod(tmp_path / "k", mode)
    with pytest.raises(KeyFileError) as exc:
        read_key(tmp_path / "k")
    assert str(tmp_path / "k") in str(exc.value) and "\n" not in str(exc.value)


def test_bad_key_files(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="not found"):
        read_key(tmp_path / "missing")
    (tmp_path / "short").write_bytes(b"x" * 5)
    os.chmod(tmp_path / "short", 0o600)
    with pytest.raises(KeyFileError, match="not a leaksentry key"):
        read_key(tmp_path / "short")
    (tmp_path / "hex").write_text("ab" * 32 + "\n")
    os.chmod(tmp_path / "hex", 0o600)
    assert read_key(tmp_path / "hex") == b"\xab" * 32


def test_digester_is_hmac_sha256() -> None:
    key = bytes(range(32))
    d = Digester(key)
    for msg in (b"hkid:A1234563", b"hn:HN12345678A", b""):
        assert d.digest64(msg) == digest64(key, msg)
    assert Digester(b"other key").digest64(b"hkid:A1234563") != d.digest64(b"hkid:A1234563")


def test_digester_many_is_hmac_sha256() -> None:
    import hmac

    key = bytes(range(32))
    msgs = [b"hkid:A1234563", b"hn:HN12345678A", b"", b"x" * 200]
    assert Digester(key).many(msgs) == [hmac.digest(key, m, "sha256") for m in msgs]
    assert Digester(key).many([]) == []
