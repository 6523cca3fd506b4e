"""blob_candidates looks only at lines holding 16 blob characters in a row; it must
yield exactly what the plain line-by-line definition yields."""

from __future__ import annotations

import re
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.extract.encoded import blob_candidates

_BLOB = (string.ascii_letters + string.digits + "+/=_-").encode()


def reference(text: bytes, min_len: int) -> list[tuple[int, str]]:
    """The definition, one line at a time: runs of base64-only lines (16-1024 blob
    characters once stripped), and runs of >= min_len blob characters in other lines."""
    token = re.compile(rb"[A-Za-z0-9+/=_-]{" + str(min_len).encode() + rb",}")

    def blob_chars(b: bytes) -> int:
        return len(b) - len(b.translate(None, _BLOB))

    out: list[tuple[int, str]] = []
    run: list[bytes] = []
    start = 0
    for i, line in enumerate(text.split(b"\n")):
        s = line.strip()
        if 16 <= len(s) <= 1024 and blob_chars(s) == len(s):
            if not run:
                start = i + 1
            run.append(s)
            continue
        if run:
            if sum(map(len, run)) >= min_len:
                out.append((start, b"".join(run).decode()))
            run = []
        if len(line) >= min_len and blob_chars(line) >= min_len:
            out.extend((i + 1, m.group(0).decode()) for m in token.finditer(line))
    if run and sum(map(len, run)) >= min_len:
        out.append((start, b"".join(run).decode()))
    return out


_PIECES = st.sampled_from([
    b"\n", b"\r\n", b" ", b"\t", b"QUJD" * 4, b"QUJDREVGR0g=" * 3, b"0123456789abcdef" * 2,
    b"A" * 15, b"A" * 16, b"A" * 40, "香港".encode(), b"hello world ", b"=", b"-_+/",
    b"x" * 20, b"\x00", "Ａ１２".encode(), b"A" * 1030,
])


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=30).map(b"".join), st.sampled_from([16, 17, 32, 64, 128]))
def test_same_as_the_line_by_line_definition(text: bytes, min_len: int) -> None:
    assert list(blob_candidates(text, min_len)) == reference(text, min_len)
    assert list(blob_candidates(text.decode("utf-8", "replace"), min_len)) == \
        reference(text.decode("utf-8", "replace").encode(), min_len)


def test_mime_wrapped_base64_and_inline_tokens() -> None:
    b64 = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=" * 10
    wrapped = "\n".join(b64[i:i + 76] for i in range(0, len(b64), 76))
    text = f"intro line\n{wrapped}\n\nsee token {b64} end\nlast"
    got = list(blob_candidates(text, 128))
    assert got == [(2, b64), (2 + wrapped.count("\n") + 2, b64)]
