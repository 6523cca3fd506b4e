"""Archives and compressed streams: ZIP (ZipCrypto and AES), 7z, TAR, RAR, GZ/BZ2/XZ/ZSTD.

Everything is read in memory, never written to disk, so member names like
"../../etc/passwd" are only labels. Every decompressed byte is charged to the
document's budget while it is produced, so bombs stop at the limit, not
after. Encrypted members are listed (names only) and opened with the
candidate passwords when one works.

py7zr (70 ms), rarfile (23 ms) and zstandard (4 ms) are imported by the handler of
their format: a ZIP or a gzip does not load them (start-up of a scan,
``python -X importtime``; :func:`pipelines.extract.preload` loads them once for workers).
"""

from __future__ import annotations

import bz2
import io
import lzma
import tarfile
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any

import pyzipper

from pipelines.extract.detect import zip_entries
from pipelines.extract.node import Node, safe_name
from pipelines.extract.state import Failed, State, Stop, reason
from pipelines.extract.tools import memory_file, run_tool
from pipelines.model import TextPart

_CHUNK = 1 << 20


def read_limited(fp: IO[bytes], state: State, where: str) -> bytes:
    """Read a member stream, charging every chunk before keeping it."""
    buf = bytearray()
    while chunk := fp.read(_CHUNK):
        state.charge(len(chunk), where)
        state.tick()
        buf += chunk
    return bytes(buf)


def _encrypted(state: State, node: Node, names: list[str]) -> None:
    listed = state.details.setdefault("encrypted_members", [])
    for n in names:
        if len(listed) < 200:
            listed.append(safe_name(f"{node.label}/{n}"))


def _locked(state: State, node: Node, locked: list[str], kind: str, outcome: str) -> None:
    """Members of a ``kind`` archive no password opened: listed, and one note for it."""
    if locked:
        _encrypted(state, node, locked)
        state.note("encrypted", f"{node.label}: {len(locked)} {kind} members are encrypted "
                                f"and {outcome}")


def _worked(state: State) -> None:
    state.details["passwords_worked"] = state.details.get("passwords_worked", 0) + 1


def _with_passwords(state: State, known: list[str], read: Callable[[str], bytes],
                    wrong: tuple[type[Exception], ...]) -> bytes | None:
    """``read(password)`` with the passwords that opened earlier members first, then the
    other candidates; None if none works. A wrong password's garbage (``wrong`` raised)
    does not count against the expansion limit; one that works is remembered."""
    for pw in [*known, *(p for p in state.candidate_passwords() if p not in known)]:
        spent = state.expanded
        try:
            data = read(pw)
        except wrong:
            state.expanded = spent
            continue
        if pw not in known:
            known.append(pw)
            _worked(state)
        return data
    return None


# -- ZIP ----------------------------------------------------------------------------------

def _read_zip_member(zf: pyzipper.AESZipFile, info: Any, state: State, where: str,
                     known: list[str]) -> bytes | None:
    """The member's bytes, trying passwords when it is encrypted; None if none works."""
    if not info.flag_bits & 0x1:
        with zf.open(info) as fp:
            return read_limited(fp, state, where)

    def read(pw: str) -> bytes:
        with zf.open(info, pwd=pw.encode("utf-8")) as fp:
            return read_limited(fp, state, where)

    return _with_passwords(state, known, read, (RuntimeError, pyzipper.BadZipFile,
                                                zlib.error, ValueError, EOFError))


def zip_archive(data: bytes, node: Node, state: State) -> Iterator[TextPart]:
    entries = zip_entries(data)
    if entries is not None and entries > 10 * state.config.max_members:
        # parsing a central directory of millions of entries is itself the attack
        raise Stop("too_large", f"{safe_name(node.label)}: ZIP lists {entries} members, "
                                f"far over the limit of {state.config.max_members}")
    try:
        zf = pyzipper.AESZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except Exception as e:
        raise Failed("corrupt", f"{node.label}: ZIP unreadable: {reason(e)}") from None
    state.details.setdefault("members_listed", 0)
    state.details["members_listed"] += len(infos)
    known: list[str] = []
    locked: list[str] = []
    broken = 0
    for info in infos:
        if info.is_dir():
            continue
        where = safe_name(f"{node.label}/{info.filename}")
        state.member(where)
        try:
            content = _read_zip_member(zf, info, state, where, known)
        except (pyzipper.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError,
                OSError, lzma.LZMAError) as e:
            broken += 1
            state.skip(where, "corrupt", f"{where}: ZIP member unreadable: {reason(e)}", note=True)
            continue
        if content is None:
            locked.append(info.filename)
            state.skip(where, "encrypted", f"{where}: encrypted, no candidate password "
                                           f"worked")
            continue
        yield from state.walk(content, node.child(info.filename))
    _locked(state, node, locked, "ZIP", "no candidate password worked")


# -- 7z -----------------------------------------------------------------------------------

class _Budgeted:
    """py7zr writer that charges the budget as it is written (bombs stop early)."""

    def __init__(self, state: State, where: str) -> None:
        self.buf = io.BytesIO()
        self.state, self.where = state, where

    def write(self, s: bytes | bytearray) -> int:
        self.state.charge(len(s), self.where)
        self.state.tick()
        return self.buf.write(s)

    def read(self, size: int | None = None) -> bytes:
        return self.buf.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.buf.seek(offset, whence)

    def flush(self) -> None:
        pass

    def size(self) -> int:
        return self.buf.getbuffer().nbytes

    def close(self) -> None:
        pass


def _seven_zip_open(data: bytes, password: str | None) -> Any:
    import py7zr

    # py7zr hands members over in blocks of up to its memory limit (about 128 MB), so a
    # 7z bomb is stopped at the budget plus at most one such block
    return py7zr.SevenZipFile(io.BytesIO(data), mode="r", password=password)


def seven_zip(data: bytes, node: Node, state: State) -> Iterator[TextPart]:
    import py7zr
    from py7zr.io import WriterFactory

    class Factory(WriterFactory):
        def __init__(self) -> None:
            self.products: dict[str, _Budgeted] = {}

        def create(self, filename: str) -> Any:
            state.member(safe_name(f"{node.label}/{filename}"))
            self.products[filename] = _Budgeted(state, node.label)
            return self.products[filename]

    names: list[str] = []
    for pw in (None, *state.candidate_passwords()):
        spent = state.expanded
        factory = Factory()
        try:
            with _seven_zip_open(data, pw) as sz:
                names = [i.filename for i in sz.list() if not i.is_directory]
                if pw is None and sz.needs_password():
                    raise py7zr.exceptions.PasswordRequired("password required")
                sz.extract(factory=factory)
        except (Failed, Stop):
            raise
        except Exception as e:
            state.expanded = spent
            if pw is None and not _password_problem(e):
                raise Failed("corrupt", f"{node.label}: 7z unreadable: {reason(e)}") from None
            continue
        if pw:
            _worked(state)
        for name, product in factory.products.items():
            yield from state.walk(product.buf.getvalue(), node.child(name))
        return
    _encrypted(state, node, names)
    detail = f" ({len(names)} members listed)" if names else " (names encrypted too)"
    raise Failed("encrypted", f"{node.label}: 7z is password-protected and no candidate "
                              f"password worked{detail}") from None


def _password_problem(e: BaseException) -> bool:
    text = f"{type(e).__name__} {e}".lower()
    return "password" in text or "crc" in text or "decrypt" in text or "aes" in text


# -- TAR ----------------------------------------------------------------------------------

def tar_archive(data: bytes, node: Node, state: State) -> Iterator[TextPart]:
    try:
        tf = tarfile.open(fileobj=io.BytesIO(data), mode="r:")  # noqa: SIM115 - in memory
    except tarfile.TarError as e:
        raise Failed("corrupt", f"{node.label}: TAR unreadable: {reason(e)}") from None
    try:
        for member in tf:
            if not member.isfile():
                continue
            where = safe_name(f"{node.label}/{member.name}")
            state.member(where)
            fp = tf.extractfile(member)
            if fp is None:
                continue
            content = read_limited(fp, state, where)
            yield from state.walk(content, node.child(member.name))
    except (tarfile.TarError, EOFError, OSError) as e:
        raise Failed("corrupt", f"{node.label}: TAR truncated or damaged: {reason(e)}") from None


# -- RAR ----------------------------------------------------------------------------------

def _rar_can_decrypt() -> bool:
    """Whether the RAR tool rarfile found takes passwords (unrar, unar, 7z do; bsdtar,
    the one Debian ships free, does not)."""
    import rarfile

    try:
        return rarfile.tool_setup().setup["password"] is not None
    except rarfile.RarCannotExec:
        return False


def _glob_escape(name: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in name)


def _read_rar_member(rf: Any, info: Any, state: State, where: str, path: str,
                     known: list[str]) -> bytes | None:
    """The member's bytes (passwords tried when it is encrypted); None when locked.

    Stored members are read by rarfile itself; compressed ones by the password-capable
    tool rarfile found, else by bsdtar run directly (rarfile 4.5 passes bsdtar a "--"
    where the archive name belongs), bounded like every tool (:func:`tools.run_tool`)."""
    import rarfile


    if not info.needs_password():
        if info.compress_type == rarfile.RAR_M0 or _rar_can_decrypt():
            with rf.open(info) as fp:
                return read_limited(fp, state, where)
        return run_tool(["bsdtar", "-x", "--to-stdout", "-f", path, "--",
                         _glob_escape(info.filename)], state, where)
    if not _rar_can_decrypt():
        return None

    def read(pw: str) -> bytes:
        with rf.open(info, pwd=pw) as fp:
            return read_limited(fp, state, where)

    return _with_passwords(state, known, read, (rarfile.RarWrongPassword, rarfile.RarCRCError,
                                                rarfile.BadRarFile, rarfile.RarFatalError))


def rar_archive(data: bytes, node: Node, state: State) -> Iterator[TextPart]:
    """RAR 1.5-5 through rarfile: stored members are read by rarfile itself, compressed
    ones through the tool it finds (bsdtar from libarchive on Debian; the archive is a
    memory file, output is charged as it arrives, so a bomb stops at the limit)."""
    import rarfile


    with memory_file(data) as path:
        try:
            try:
                rf = rarfile.RarFile(path)
            except (rarfile.RarWrongPassword, rarfile.PasswordRequired):
                raise Failed("encrypted", f"{node.label}: RAR is password-protected (names "
                                          f"too)") from None
            if rf.needs_password() and not rf.infolist():  # file names encrypted too
                for pw in state.candidate_passwords():
                    try:
                        rf.setpassword(pw)
                    except (rarfile.RarWrongPassword, rarfile.BadRarFile,
                            rarfile.RarCannotExec):
                        continue
                    if rf.infolist():
                        _worked(state)
                        break
                else:
                    raise Failed("encrypted", f"{node.label}: RAR is password-protected "
                                              f"(names too) and no candidate password "
                                              f"worked")
            infos = rf.infolist()
        except Failed:
            raise
        except Exception as e:
            raise Failed("corrupt", f"{node.label}: RAR unreadable: {reason(e)}") from None
        state.details["members_listed"] = state.details.get("members_listed", 0) + len(infos)
        known: list[str] = []
        locked: list[str] = []
        for info in infos:
            if not info.is_file():
                continue
            where = safe_name(f"{node.label}/{info.filename}")
            state.member(where)
            try:
                content = _read_rar_member(rf, info, state, where, path, known)
            except Stop:
                raise
            except Failed as e:  # the tool could not read it (a solid archive for bsdtar)
                state.skip(where, e.status, e.message, note=True)
                continue
            except Exception as e:
                state.skip(where, "corrupt", f"{where}: RAR member unreadable: {reason(e)}",
                           note=True)
                continue
            if content is None:
                locked.append(info.filename)
                why = "no candidate password worked" if _rar_can_decrypt() else \
                    "the installed RAR reader cannot decrypt"
                state.skip(where, "encrypted", f"{where}: encrypted, {why}")
                continue
            yield from state.walk(content, node.child(info.filename))
    _locked(state, node, locked, "RAR", "could not be opened")


# -- single-stream compression -------------------------------------------------------------

def inflate(data: bytes, state: State, where: str,
            new: Callable[[], Any], multi: bool = True) -> bytes:
    """Decompress with a bounded output size per call, charging as it goes."""
    out = bytearray()
    rest = data
    while rest:
        d = new()
        pending = rest
        while True:
            chunk = d.decompress(pending, _CHUNK)
            state.charge(len(chunk), where)
            state.tick()
            out += chunk
            pending = b""
            if d.eof or (not chunk and d.needs_input):
                break
        if not d.eof:
            state.note("corrupt", f"{where}: compressed stream truncated")
            break
        rest = d.unused_data
        if not multi or not rest.strip(b"\x00"):
            break
    return bytes(out)


class ZlibStream:
    """zlib.decompressobj with the bz2/lzma decompressor interface :func:`inflate` uses;
    ``wbits`` as zlib's (31: a gzip member, -15: raw deflate)."""

    def __init__(self, wbits: int = 31) -> None:
        self.d = zlib.decompressobj(wbits=wbits)
        self.needs_input = True

    def decompress(self, data: bytes, max_length: int) -> bytes:
        chunk = self.d.decompress(self.d.unconsumed_tail + data, max_length)
        self.needs_input = not self.d.unconsumed_tail
        return chunk

    @property
    def eof(self) -> bool:
        return self.d.eof

    @property
    def unused_data(self) -> bytes:
        return self.d.unused_data


_STREAMS: dict[str, tuple[Callable[[], Any], tuple[str, ...]]] = {
    "gzip": (ZlibStream, (".gz", ".gzip")),
    "bzip2": (bz2.BZ2Decompressor, (".bz2",)),
    "xz": (lzma.LZMADecompressor, (".xz",)),
    "zstd": (lambda: None, (".zst", ".zstd")),  # read through zstandard's stream reader
}

#: largest zstd window accepted (the format allows up to 2 GiB of decoder memory)
_ZSTD_WINDOW = 1 << 27


def _unzstd(data: bytes, state: State, where: str) -> bytes:
    import zstandard

    reader = zstandard.ZstdDecompressor(max_window_size=_ZSTD_WINDOW).stream_reader(
        io.BytesIO(data), read_across_frames=True)
    try:
        return read_limited(reader, state, where)
    except zstandard.ZstdError as e:
        raise ValueError(str(e)) from None


def compressed(data: bytes, node: Node, state: State, kind: str) -> Iterator[TextPart]:
    new, exts = _STREAMS[kind]
    base = node.name.rstrip("/").rsplit("/", 1)[-1]
    low = base.lower()
    inner = base
    if low.endswith(".tgz"):
        inner = base[:-4] + ".tar"
    else:
        for ext in exts:
            if low.endswith(ext):
                inner = base[: -len(ext)]
                break
        else:
            inner = base + ".out" if base else "content"
    where = safe_name(node.label)
    state.member(where)
    try:
        content = _unzstd(data, state, where) if kind == "zstd" else \
            inflate(data, state, where, new)
    except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as e:
        raise Failed("corrupt", f"{node.label}: {kind} stream unreadable: "
                                f"{reason(e)}") from None
    yield from state.walk(content, node.child(inner or "content"))
