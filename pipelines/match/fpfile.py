"""The fingerprint file: keyed digests sorted for lookup, memory-mapped on load.

Layout (little-endian), every array 64-byte aligned::

    header  magic "LSFPRINT", version u16, flags u16, header_len u32, key_id 8 bytes,
            n_entries u64, n_records u64, created u64 (unix s),
            digests_off, meta_off, refoff_off, refblob_off, refblob_len (u64 each),
            info_len u32, reserved u32, then info JSON (kinds, counts, build report)
    digests n_entries x u64, sorted ascending (HMAC-SHA256 truncated to 64 bits)
    meta    n_entries x u32: kind index << 28 | record index
    refoff  (n_records + 2) x u32 offsets into refblob  (only with a reference column;
            records are 1..n, 0 unused)
    refblob UTF-8 register references                   (only with a reference column)
    mac     32 bytes: HMAC-SHA256(mac_key(key), everything before it)

Without a reference column the record index *is* the 1-based data row
number, so nothing else is stored: 12 bytes per identifier. The trailing MAC
makes a truncated or altered file (or one made with another key) an error,
not a silent miss.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import mmap
import os
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from leaksentry.errors import FingerprintFileError
from pipelines.match.keys import key_id, mac_key

MAGIC = b"LSFPRINT"
VERSION = 1
FLAG_REF_TABLE = 1
_HEAD = struct.Struct("<8sHHI8sQQQQQQQQII")  # 96 bytes
MAC_BYTES = 32
KIND_SHIFT = 28
RECORD_MASK = (1 << KIND_SHIFT) - 1
MAX_KINDS = 16
_ALIGN = 64


def _pad(n: int) -> int:
    return (-n) % _ALIGN


@dataclass(slots=True)
class FingerprintInfo:
    """The header, as `fingerprints info` prints it."""

    path: Path
    version: int
    key_id: str
    entries: int
    records: int
    created: int
    ref_column: bool
    kinds: list[dict[str, Any]]
    build: dict[str, Any] = field(default_factory=dict)
    size: int = 0


def write_fingerprints(path: Path | str, key: bytes, digests: np.ndarray, meta: np.ndarray,
                       kinds: list[str], kind_counts: list[int], n_records: int,
                       refs: list[str] | None = None,
                       build: dict[str, Any] | None = None) -> FingerprintInfo:
    """Sort and write; ``digests`` uint64, ``meta`` uint32 (kind << 28 | record)."""
    path = Path(path)
    if len(kinds) > MAX_KINDS:
        raise FingerprintFileError(f"{path}: at most {MAX_KINDS} kinds")
    digests = np.asarray(digests, dtype=np.uint64)
    meta = np.asarray(meta, dtype=np.uint32)
    order = np.lexsort((meta, digests))
    digests = digests[order].astype("<u8", copy=False)
    meta = meta[order].astype("<u4", copy=False)
    if refs is not None:
        if len(refs) != n_records + 1:
            raise ValueError("refs must hold n_records + 1 entries (index 0 unused)")
        blobs = [r.encode("utf-8") for r in refs]
        offsets = np.zeros(len(blobs) + 1, dtype=np.uint64)
        np.cumsum([len(b) for b in blobs], out=offsets[1:])
        if offsets[-1] >= 2**32:
            raise FingerprintFileError(f"{path}: register references exceed 4 GB")
        refoff = offsets.astype("<u4")
        refblob = b"".join(blobs)
    else:
        refoff = np.zeros(0, dtype="<u4")
        refblob = b""
    info = json.dumps({
        "kinds": [{"name": k, "count": int(c)} for k, c in zip(kinds, kind_counts, strict=True)],
        "build": build or {},
    }, separators=(",", ":")).encode()
    head_len = _HEAD.size + len(info)
    digests_off = head_len + _pad(head_len)
    meta_off = digests_off + digests.nbytes
    meta_off += _pad(meta_off)
    refoff_off = meta_off + meta.nbytes
    refoff_off += _pad(refoff_off)
    refblob_off = refoff_off + refoff.nbytes
    created = int(time.time())
    header = _HEAD.pack(MAGIC, VERSION, FLAG_REF_TABLE if refs is not None else 0, head_len,
                        bytes.fromhex(key_id(key)), len(digests), n_records, created,
                        digests_off, meta_off, refoff_off, refblob_off, len(refblob),
                        len(info), 0)
    mac = hmac.new(mac_key(key), digestmod=hashlib.sha256)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            pos = 0

            def put(data: bytes | memoryview, at: int) -> None:
                nonlocal pos
                if at > pos:
                    gap = b"\0" * (at - pos)
                    f.write(gap)
                    mac.update(gap)
                    pos = at
                f.write(data)
                mac.update(data)
                pos += len(data)

            put(header + info, 0)
            put(digests.data.cast("B"), digests_off)
            put(meta.data.cast("B"), meta_off)
            put(refoff.data.cast("B"), refoff_off)
            put(refblob, refblob_off)
            f.write(mac.digest())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise FingerprintFileError(f"{path}: cannot write fingerprint file: {exc.strerror}") \
            from None
    return read_info(path)


def _parse_header(path: Path, mm: bytes | mmap.mmap, size: int) -> tuple[Any, ...]:
    if size < _HEAD.size + MAC_BYTES:
        raise FingerprintFileError(f"{path}: not a fingerprint file (too short)")
    fields = _HEAD.unpack_from(mm, 0)
    if fields[0] != MAGIC:
        raise FingerprintFileError(f"{path}: not a leaksentry fingerprint file")
    if fields[1] != VERSION:
        raise FingerprintFileError(
            f"{path}: fingerprint file format version {fields[1]} is not supported "
            f"(this leaksentry reads version {VERSION}); rebuild it")
    return fields


def _check_layout(path: Path, fields: tuple[Any, ...], size: int) -> None:
    (_, _, flags, head_len, _, n, n_rec, _, d_off, m_off, r_off, b_off, b_len, i_len, _) = fields
    expected_end = b_off + b_len + MAC_BYTES
    ok = (head_len == _HEAD.size + i_len and d_off >= head_len and m_off >= d_off + 8 * n
          and r_off >= m_off + 4 * n and b_off >= r_off
          and (not flags & FLAG_REF_TABLE or b_off >= r_off + 4 * (n_rec + 2)) and n_rec < 2**32)
    if not ok:
        raise FingerprintFileError(f"{path}: fingerprint file header is corrupt")
    if size != expected_end:
        what = "truncated" if size < expected_end else "has trailing data"
        raise FingerprintFileError(f"{path}: fingerprint file is {what}")


def read_info(path: Path | str) -> FingerprintInfo:
    """Read the header only (no key needed)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(1 << 16)
    except FileNotFoundError:
        raise FingerprintFileError(f"{path}: fingerprint file not found") from None
    except OSError as exc:
        raise FingerprintFileError(f"{path}: cannot read fingerprint file: {exc.strerror}") \
            from None
    fields = _parse_header(path, head, size)
    _check_layout(path, fields, size)
    info = _info_json(path, head, fields)
    return FingerprintInfo(path=path, version=fields[1], key_id=fields[4].hex(), entries=fields[5],
                           records=fields[6], created=fields[7],
                           ref_column=bool(fields[2] & FLAG_REF_TABLE),
                           kinds=info.get("kinds", []), build=info.get("build", {}), size=size)


def _info_json(path: Path, buf: bytes | mmap.mmap, fields: tuple[Any, ...]) -> dict[str, Any]:
    i_len = fields[13]
    try:
        info = json.loads(bytes(buf[_HEAD.size:_HEAD.size + i_len]))
        assert isinstance(info, dict)
        return info
    except (ValueError, AssertionError):
        raise FingerprintFileError(f"{path}: fingerprint file header is corrupt") from None


class FingerprintSet:
    """A memory-mapped fingerprint file: numpy views over the mapping, no per-entry objects.

    Safe to use after ``os.fork()`` (the mapping is shared read-only).

    ``verify="background"``: the integrity check (an HMAC over the whole file, 30 ms for
    a 1 M-row register) runs on a thread while the caller goes on (`leaksentry scan`
    starts scanning); :meth:`verified` waits for it and raises if the file failed, and
    the caller must call it before it uses a result.
    """

    def __init__(self, path: Path | str, key: bytes,
                 verify: bool | Literal["background"] = True) -> None:
        self.path = path = Path(path)
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size == 0:
                    raise FingerprintFileError(f"{path}: fingerprint file is empty")
                self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except FileNotFoundError:
            raise FingerprintFileError(f"{path}: fingerprint file not found") from None
        except IsADirectoryError:
            raise FingerprintFileError(f"{path}: is a directory, not a fingerprint file") \
                from None
        except OSError as exc:
            raise FingerprintFileError(f"{path}: cannot read fingerprint file: {exc.strerror}") \
                from None
        mm = self._mm
        fields = _parse_header(path, mm, size)
        _check_layout(path, fields, size)
        file_key_id = fields[4].hex()
        if file_key_id != key_id(key):
            raise FingerprintFileError(
                f"{path}: fingerprint file was made with another key (key id {file_key_id},"
                f" this key is {key_id(key)})")
        self._check: tuple[int, threading.Thread, list[bool], bytes] | None = None
        if verify == "background":
            box: list[bool] = []
            mk = mac_key(key)
            thread = threading.Thread(target=lambda: box.append(self._intact(mk, size)),
                                      name="fingerprint-check", daemon=True)
            thread.start()
            self._check = (os.getpid(), thread, box, mk)
        elif verify and not self._intact(mac_key(key), size):
            raise self._damaged()
        info = _info_json(path, mm, fields)
        (_, _, flags, _, _, n, n_rec, created, d_off, m_off, r_off, b_off, b_len, _, _) = fields
        self.entries = n
        self.records = n_rec
        self.created = created
        self.kinds: list[str] = [k["name"] for k in info.get("kinds", [])]
        self.build: dict[str, Any] = info.get("build", {})
        self.digests = np.frombuffer(mm, dtype="<u8", count=n, offset=d_off)
        self.meta = np.frombuffer(mm, dtype="<u4", count=n, offset=m_off)
        self.ref_table = bool(flags & FLAG_REF_TABLE)
        if self.ref_table:
            self._refoff = np.frombuffer(mm, dtype="<u4", count=n_rec + 2, offset=r_off)
            self._refblob = (b_off, b_len)

    def _intact(self, mk: bytes, size: int) -> bool:
        mm = self._mm
        mac = hmac.new(mk, memoryview(mm)[: size - MAC_BYTES], hashlib.sha256)
        return hmac.compare_digest(mac.digest(), mm[size - MAC_BYTES:])

    def _damaged(self) -> FingerprintFileError:
        return FingerprintFileError(
            f"{self.path}: fingerprint file failed its integrity check (altered or damaged)")

    def verified(self) -> None:
        """Wait for a background integrity check (see the class doc); raises
        FingerprintFileError if the file failed it. In a forked child, which has no such
        thread, the check runs here."""
        if self._check is None:
            return
        pid, thread, box, mk = self._check
        if pid == os.getpid():
            thread.join()
            intact = bool(box) and box[0]
        else:
            intact = self._intact(mk, len(self._mm))
        if not intact:
            raise self._damaged()
        self._check = None

    def ref(self, record: int) -> str:
        """The register reference of a record index."""
        if not self.ref_table:
            return str(record)
        start, end = int(self._refoff[record]), int(self._refoff[record + 1])
        b_off = self._refblob[0]
        return self._mm[b_off + start: b_off + end].decode("utf-8", "replace")

    def refs(self, records: list[int]) -> list[str]:
        """:meth:`ref` of many records (56,000 matched rows of a sheet): the offsets are
        read with one numpy gather instead of two scalar reads per record."""
        if not self.ref_table:
            return list(map(str, records))
        rec = np.asarray(records, dtype=np.int64)
        starts = self._refoff[rec].tolist()
        ends = self._refoff[rec + 1].tolist()
        b_off = self._refblob[0]
        mm = self._mm
        return [mm[b_off + s: b_off + e].decode("utf-8", "replace")
                for s, e in zip(starts, ends, strict=True)]

    def lookup(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For uint64 ``queries``: (found mask, index of the first equal entry)."""
        d = self.digests
        if len(d) == 0 or len(queries) == 0:
            return np.zeros(len(queries), dtype=bool), np.zeros(len(queries), dtype=np.int64)
        if len(queries) > 64:
            # sorted queries walk the table in order (numpy reuses the last bound), which
            # is several times faster than random probes into a large mapping
            order = np.argsort(queries, kind="stable")
            idx = np.empty(len(queries), dtype=np.intp)
            idx[order] = np.searchsorted(d, queries[order])
        else:
            idx = np.searchsorted(d, queries)
        clipped = np.minimum(idx, len(d) - 1)
        found = d[clipped] == queries
        return found, clipped

    def records_at(self, index: int, digest: int) -> list[int]:
        """Every record holding ``digest``, starting at its first entry ``index``."""
        out = [int(self.meta[index]) & RECORD_MASK]
        j = index + 1
        while j < self.entries and int(self.digests[j]) == digest:
            out.append(int(self.meta[j]) & RECORD_MASK)
            j += 1
        return out

    def close(self) -> None:
        # numpy views keep the buffer exported; let garbage collection unmap it
        # the views go (a closed set is not used again): the typed fields hold None from here
        self.digests = self.meta = None  # type: ignore[assignment]
