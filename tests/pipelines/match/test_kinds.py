"""Canonical forms, the default hospital-number layout, custom kinds, checksums, masks."""

from __future__ import annotations

import pytest

from leaksentry.config.matching import HnConfig, KindConfig, MatchingConfig
from leaksentry.identifiers.checksums import luhn_ok, mod11_ok
from leaksentry.identifiers.kinds import build_kinds
from leaksentry.redaction import mask, mask_b


def kind(name: str, cfg: MatchingConfig | None = None):
    return next(k for k in build_kinds(cfg) if k.name == name)


@pytest.mark.parametrize("written", ["HN12345678A", "HN12345678(A)", "hn 12345678 (a)",
                                     "ＨＮ１２３４５６７８（Ａ）", "HN 12345678 A"])
def test_hn_written_forms(written: str) -> None:
    hn = kind("hn")
    assert hn.canonical_cell(written) == "HN12345678A"
    buf = f"\n住院 {written}，\n".encode()
    assert [hn.canonical(buf[m.start():m.end()]) for m in hn.rx.finditer(buf)] == ["HN12345678A"]


@pytest.mark.parametrize("text", ["HN12345", "HN123456789012", "XHN12345678", "HN12345678AB"])
def test_hn_not_matched(text: str) -> None:
    hn = kind("hn")
    assert list(hn.rx.finditer(f"\n{text}\n".encode())) == []


def test_hn_digit_lengths() -> None:
    hn = kind("hn")
    assert hn.canonical_cell("HN123456") == "HN123456"
    assert hn.canonical_cell("HN1234567890") == "HN1234567890"
    assert hn.canonical_cell("HN12345") is None


def test_hn_configured_pattern_and_disable() -> None:
    cfg = MatchingConfig(hn=HnConfig(pattern=r"H\d{7}"))
    hn = kind("hn", cfg)
    assert hn.canonical_cell("H1234567") == "H1234567"
    assert hn.canonical_cell("HN12345678A") is None
    assert [k.name for k in build_kinds(MatchingConfig(hn=HnConfig(enabled=False)))] == ["hkid"]


def test_custom_kind_luhn() -> None:
    cfg = MatchingConfig(kinds=[KindConfig(name="card", pattern=r"\d{4}[ -]?\d{4}[ -]?\d{4}"
                                           r"[ -]?\d{4}", checksum="luhn")])
    card = kind("card", cfg)
    assert card.canonical_cell("4111 1111 1111 1111") == "4111111111111111"
    assert card.canonical_cell("4111 1111 1111 1112") is None
    buf = b"\npay 4111-1111-1111-1111 now x41111111111111111\n"
    assert [card.canonical(buf[m.start():m.end()]) for m in card.rx.finditer(buf)] == [
        "4111111111111111"]


def test_checksums() -> None:
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")
    assert mod11_ok("0306406152")  # ISBN-10 style: weights 2.. from the right
    assert mod11_ok("043942089X") and not mod11_ok("0439420891")
    assert not mod11_ok("1")


def test_bad_custom_kind_config() -> None:
    with pytest.raises(ValueError, match="kinds"):
        MatchingConfig(kinds=[{"name": "hkid", "pattern": "x"}])
    with pytest.raises(ValueError, match="pattern"):
        MatchingConfig(kinds=[{"name": "x", "pattern": "("}])
    with pytest.raises(ValueError, match="checksum"):
        MatchingConfig(kinds=[{"name": "x", "pattern": "a", "checksum": "crc"}])


@pytest.mark.parametrize(("k", "canonical", "masked"), [
    ("hkid", "A1234563", "A12****(3)"),
    ("hkid", "AB9876543", "AB98****(3)"),
    ("hkid", "G123456A", "G12****(A)"),
    ("hn", "HN12345678A", "HN12******(A)"),
    ("hn", "HN123456789", "HN12*******"),
    ("mrn", "1234567", "12*****"),
])
def test_mask(k: str, canonical: str, masked: str) -> None:
    assert mask(k, canonical) == masked
    digits = "".join(c for c in canonical if c.isdigit())
    assert digits not in masked


def test_batch_canonical_and_mask_agree_with_single() -> None:
    """canonical_many / valid_many / the ASCII mask path equal the one-token forms,
    full-width tokens and custom kinds included."""
    cfg = MatchingConfig(kinds=[KindConfig(name="mrn", pattern=r"MRN-?[0-9]{6}",
                                           checksum="luhn", remove="-")])
    tokens = [b"a123456(3)", b"AB 987654 (a)", "Ａ１２３４５６（３）".encode(), b"hn1234567x",
              b"HN 12345678", "ｈｎ１２３４５６７".encode(), b"MRN-000018", b"", b"x\ty"]
    for kind in build_kinds(cfg):
        canon = kind.canonical_many(tokens)
        assert canon == [kind.canonical_b(t) for t in tokens]
        assert kind.valid_many(canon).tolist() == [kind.valid_b(c) for c in canon]
        for c in canon:
            assert mask_b(kind.name, c) == mask(kind.name, c.decode("utf-8", "replace"))
    assert build_kinds()[0].canonical_many([b"a\n1"]) == [b"A\n1"]  # newline: one by one
