"""The HKID check character (REFERENCE.md).

One-letter IDs are left-padded with a space worth 36; letters are 10-35;
weights 9..2; check = 0 if r == 0, 'A' if r == 1, else 11 - r, r = S mod 11.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


def _value(ch: str) -> int:
    if ch == " ":
        return 36
    if "A" <= ch <= "Z":
        return ord(ch) - 55
    if "0" <= ch <= "9":
        return ord(ch) - 48
    raise ValueError("invalid HKID character")


def check_char(body: str) -> str:
    """Check character for a prefix+digits body (``A123456`` or ``AB987654``), upper-case."""
    if len(body) not in (7, 8):
        raise ValueError("HKID body must be 1-2 letters and 6 digits")
    padded = body.rjust(8)
    total = sum(w * _value(c) for w, c in zip(range(9, 1, -1), padded, strict=True))
    r = total % 11
    if r == 0:
        return "0"
    if r == 1:
        return "A"
    return str(11 - r)


def is_valid_canonical(canonical: str) -> bool:
    """True for a canonical HKID (``A1234563``, ``AB9876543``) whose check character is right."""
    n = len(canonical)
    if n not in (8, 9):
        return False
    letters, digits, check = canonical[: n - 7], canonical[n - 7 : n - 1], canonical[-1]
    if not (letters.isascii() and letters.isalpha() and letters.isupper()):
        return False
    if not (digits.isascii() and digits.isdigit()):
        return False
    return check_char(letters + digits) == check


# A one-character-per-value table is faster than the generic path on the scan hot loop.
_VALUES = {chr(c): c - 55 for c in range(65, 91)} | {str(d): d for d in range(10)} | {" ": 36}


def is_valid(canonical: str) -> bool:
    """Fast check of a canonical HKID's shape and check character (hot path of the scanner)."""
    n = len(canonical)
    if n == 8:
        total = 36 * 9 + 8 * _VALUES.get(canonical[0], 99)
        letters_ok = "A" <= canonical[0] <= "Z"
    elif n == 9:
        total = 9 * _VALUES.get(canonical[0], 99) + 8 * _VALUES.get(canonical[1], 99)
        letters_ok = "A" <= canonical[0] <= "Z" and "A" <= canonical[1] <= "Z"
    else:
        return False
    digits = canonical[n - 7 : n - 1]
    if not (letters_ok and digits.isascii() and digits.isdigit()):
        return False
    for w, c in zip((7, 6, 5, 4, 3, 2), digits, strict=True):
        total += w * (ord(c) - 48)
    r = total % 11
    check = "0" if r == 0 else "A" if r == 1 else chr(48 + 11 - r)
    return canonical[-1] == check


def _digit_table() -> bytes:
    """(7*d1 + 6*d2 + ... + 2*d6) mod 11 for every six-digit run, indexed by its value."""
    import numpy as np

    n = np.arange(1_000_000, dtype=np.int64)
    total = np.zeros_like(n)
    for w, div in zip((7, 6, 5, 4, 3, 2), (10**5, 10**4, 10**3, 100, 10, 1), strict=True):
        total += w * ((n // div) % 10)
    return (total % 11).astype(np.uint8).tobytes()


_TABLE: bytes | None = None
_CHECK = b"0A987654321"  # check character for r = S mod 11
_PAD = 36 * 9


def is_valid_bytes(canonical: bytes) -> bool:
    """:func:`is_valid` for an ASCII canonical form as bytes: the scanner's hot path
    (a precomputed 1 MB table replaces the digit arithmetic)."""
    global _TABLE
    n = len(canonical)
    if n == 8:
        c0 = canonical[0]
        if not 65 <= c0 <= 90:
            return False
        head = _PAD + 8 * (c0 - 55)
    elif n == 9:
        c0, c1 = canonical[0], canonical[1]
        if not (65 <= c0 <= 90 and 65 <= c1 <= 90):
            return False
        head = 9 * (c0 - 55) + 8 * (c1 - 55)
    else:
        return False
    digits = canonical[n - 7 : n - 1]
    if not digits.isdigit():
        return False
    if _TABLE is None:
        _TABLE = _digit_table()
    return canonical[-1] == _CHECK[(head + _TABLE[int(digits)]) % 11]


_CHECK_ARR: NDArray[np.int64] | None = None
_WEIGHTS = (7, 6, 5, 4, 3, 2)


def valid_many_bytes(canonicals: list[bytes]) -> NDArray[np.bool_]:
    """:func:`is_valid_bytes` of every canonical form at once, with numpy over a fixed
    9-byte array (one-letter IDs right-aligned, as the check-digit rule pads them)."""
    import numpy as np

    global _CHECK_ARR
    if _CHECK_ARR is None:
        _CHECK_ARR = np.frombuffer(_CHECK, dtype=np.uint8).astype(np.int64)
    n = len(canonicals)
    if not n:
        return np.zeros(0, dtype=bool)
    lens = np.fromiter(map(len, canonicals), dtype=np.int64, count=n)
    a = np.frombuffer(b"".join([c.rjust(9)[-9:] for c in canonicals]),
                      dtype=np.uint8).reshape(n, 9).astype(np.int64)
    two = lens == 9
    c0, c1, digits = a[:, 0], a[:, 1], a[:, 2:8]
    ok: NDArray[np.bool_] = (two | (lens == 8)) & (c1 >= 65) & (c1 <= 90)
    ok &= ~two | ((c0 >= 65) & (c0 <= 90))
    ok &= ((digits >= 48) & (digits <= 57)).all(axis=1)
    total = np.where(two, 9 * (c0 - 55), _PAD) + 8 * (c1 - 55) + (digits - 48) @ np.array(
        _WEIGHTS, dtype=np.int64)
    ok &= a[:, 8] == _CHECK_ARR[total % 11]
    return ok
