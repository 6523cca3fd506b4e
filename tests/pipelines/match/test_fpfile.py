"""The fingerprint file: round trip, header, and refusal of damaged or foreign files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from leaksentry.errors import FingerprintFileError
from pipelines.match.fpfile import (
    KIND_SHIFT,
    MAC_BYTES,
    FingerprintSet,
    read_info,
    write_fingerprints,
)
from pipelines.match.keys import key_id

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))


def _write(path: Path, refs: list[str] | None = None, n: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(1)
    digests = rng.integers(0, 2**63, size=n, dtype=np.uint64)
    meta = np.array([((i % 2) << KIND_SHIFT) | (i // 2 + 1) for i in range(n)], dtype=np.uint32)
    write_fingerprints(path, KEY, digests, meta, ["hkid", "hn"], [n // 2, n // 2],
                       n_records=n // 2, refs=refs)
    return digests


def test_round_trip(tmp_path: Path) -> None:
    digests = _write(tmp_path / "fp")
    fp = FingerprintSet(tmp_path / "fp", KEY)
    assert fp.entries == 1000 and fp.records == 500 and fp.kinds == ["hkid", "hn"]
    assert np.all(np.diff(fp.digests.astype(np.float64)) >= 0)
    found, idx = fp.lookup(digests[:10])
    assert found.all()
    assert [int(fp.meta[i]) & 0xFFFFFFF for i in idx] == [i // 2 + 1 for i in range(10)]
    found, _ = fp.lookup(np.array([1, 2, 2**64 - 1], dtype=np.uint64))
    assert not found.any()
    assert fp.ref(7) == "7"
    info = read_info(tmp_path / "fp")
    assert info.key_id == key_id(KEY) and info.entries == 1000
    assert info.size / info.entries < 16  # compact: 12 bytes per identifier + header


def test_reference_table(tmp_path: Path) -> None:
    refs = [""] + [f"P{i:05d}" for i in range(1, 501)]
    _write(tmp_path / "fp", refs=refs)
    fp = FingerprintSet(tmp_path / "fp", KEY)
    assert fp.ref(1) == "P00001" and fp.ref(500) == "P00500"
    assert read_info(tmp_path / "fp").ref_column


def test_wrong_key(tmp_path: Path) -> None:
    _write(tmp_path / "fp")
    with pytest.raises(FingerprintFileError, match="another key"):
        FingerprintSet(tmp_path / "fp", OTHER)


@pytest.mark.parametrize("cut", [1, MAC_BYTES, 5000, 10**9])
def test_truncated(tmp_path: Path, cut: int) -> None:
    _write(tmp_path / "fp")
    data = (tmp_path / "fp").read_bytes()
    (tmp_path / "fp").write_bytes(data[: max(0, len(data) - cut)])
    with pytest.raises(FingerprintFileError) as exc:
        FingerprintSet(tmp_path / "fp", KEY)
    assert str(tmp_path / "fp") in str(exc.value)


@pytest.mark.parametrize("where", ["digest", "meta", "mac"])
def test_tampered(tmp_path: Path, where: str) -> None:
    _write(tmp_path / "fp")
    data = bytearray((tmp_path / "fp").read_bytes())
    at = {"digest": 200, "meta": len(data) - MAC_BYTES - 100, "mac": len(data) - 1}[where]
    data[at] ^= 0x01
    (tmp_path / "fp").write_bytes(bytes(data))
    with pytest.raises(FingerprintFileError, match="integrity"):
        FingerprintSet(tmp_path / "fp", KEY)


def test_not_a_fingerprint_file(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "junk").write_bytes(b"hello world" * 100)
    for name in ("empty", "junk", "missing"):
        with pytest.raises(FingerprintFileError):
            FingerprintSet(tmp_path / name, KEY)
    with pytest.raises(FingerprintFileError, match="directory"):
        FingerprintSet(tmp_path, KEY)


def test_other_version(tmp_path: Path) -> None:
    _write(tmp_path / "fp")
    data = bytearray((tmp_path / "fp").read_bytes())
    struct.pack_into("<H", data, 8, 99)
    (tmp_path / "fp").write_bytes(bytes(data))
    with pytest.raises(FingerprintFileError, match="version 99"):
        FingerprintSet(tmp_path / "fp", KEY)


def test_batch_lookup_and_refs_agree_with_single(tmp_path: Path) -> None:
    """The sorted batch lookup (> 64 queries) and the gathered references give what
    one-by-one lookups and ``ref`` give, in query order, hits and misses mixed."""
    refs = [""] + [f"P{i:05d}" for i in range(1, 501)]
    digests = _write(tmp_path / "fp", refs=refs)
    fp = FingerprintSet(tmp_path / "fp", KEY)
    rng = np.random.default_rng(3)
    q = np.concatenate([digests[rng.permutation(len(digests))[:300]],
                        rng.integers(0, 2**63, 200, dtype=np.uint64)])
    rng.shuffle(q)
    found, idx = fp.lookup(q)
    one = [fp.lookup(q[i:i + 1]) for i in range(len(q))]
    assert found.tolist() == [bool(f[0]) for f, _ in one]
    assert idx.tolist() == [int(i[0]) for _, i in one]
    assert int(found.sum()) == 300
    records = [5, 1, 500, 77, 5]
    assert fp.refs(records) == [fp.ref(r) for r in records] == [
        "P00005", "P00001", "P00500", "P00077", "P00005"]
    assert fp.refs([]) == []


def test_background_check(tmp_path: Path) -> None:
    """``verify="background"``: the HMAC runs on a thread; verified() waits for it, and
    raises for a damaged file (in a forked child, which has no such thread, it checks)."""
    import os

    _write(tmp_path / "fp")
    FingerprintSet(tmp_path / "fp", KEY, verify="background").verified()
    data = bytearray((tmp_path / "fp").read_bytes())
    data[200] ^= 0x01
    (tmp_path / "bad").write_bytes(bytes(data))
    bad = FingerprintSet(tmp_path / "bad", KEY, verify="background")
    pid = os.fork()
    if pid == 0:  # the child: checks itself
        try:
            bad.verified()
        except FingerprintFileError:
            os._exit(3)
        os._exit(0)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 3
    with pytest.raises(FingerprintFileError, match="integrity"):
        bad.verified()
    with pytest.raises(FingerprintFileError, match="integrity"):
        bad.verified()  # still damaged on a second call
