"""Check-character validators for canonical identifiers, selectable per kind in config.

``luhn`` and ``mod11`` run over the digits of the canonical form (letters such
as a ``HN`` prefix are ignored); for ``mod11`` the last character is the check:
weights 2, 3, 4 ... from the right of the body, check = (11 - S mod 11) mod 11,
with 10 written ``X`` or ``A``.
"""

from __future__ import annotations

from collections.abc import Callable

from leaksentry.identifiers import hkid


def luhn_ok(canonical: str) -> bool:
    digits = [ord(c) - 48 for c in canonical if "0" <= c <= "9"]
    if len(digits) < 2 or not canonical[-1].isdigit():
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def mod11_ok(canonical: str) -> bool:
    if len(canonical) < 2:
        return False
    check = canonical[-1]
    body = [ord(c) - 48 for c in canonical[:-1] if "0" <= c <= "9"]
    if not body:
        return False
    total = sum(w * d for w, d in zip(range(2, len(body) + 2), reversed(body), strict=True))
    want = (11 - total % 11) % 11
    if want == 10:
        return check in "XA"
    return check == str(want)


def always(canonical: str) -> bool:
    return True


def _on_bytes(check: Callable[[str], bool]) -> Callable[[bytes], bool]:
    def run(canonical: bytes) -> bool:
        return check(canonical.decode("utf-8", "replace"))

    return run


def always_b(canonical: bytes) -> bool:
    return True


#: the same validators on canonical forms as bytes (the scanner's hot path)
CHECKSUMS_BYTES: dict[str, Callable[[bytes], bool]] = {
    "none": always_b,
    "hkid": hkid.is_valid_bytes,
    "luhn": _on_bytes(luhn_ok),
    "mod11": _on_bytes(mod11_ok),
}

CHECKSUMS: dict[str, Callable[[str], bool]] = {
    "none": always,
    "hkid": hkid.is_valid,
    "luhn": luhn_ok,
    "mod11": mod11_ok,
}
