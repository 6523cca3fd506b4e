"""The one redaction policy (issue 14): every kind, every written and encoded form, one
mask format, URL userinfo, logs; many hypothesis examples (the function is cheap)."""

from __future__ import annotations

import logging
import random
import re
import unicodedata
from urllib.parse import quote, quote_plus, unquote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leaksentry import redaction, synth
from leaksentry.config.matching import HnConfig, KindConfig, MatchingConfig
from leaksentry.identifiers.checksums import luhn_ok
from leaksentry.redaction import Policy, mask, mask_b, redact, redact_error, redact_line

MRN = KindConfig(name="mrn", pattern=r"MRN-?\d{7}", checksum="luhn")
CFG = MatchingConfig(kinds=[MRN])
POLICY = Policy.from_config(CFG)


def luhn_mrn(rng: random.Random) -> str:
    while True:
        c = "MRN" + f"{rng.randrange(10**7):07d}"
        if luhn_ok(c):
            return c


def flat(text: str) -> str:
    """What a reader could get back: decodings undone, NFKC, upper case, only letters and
    digits kept."""
    for _ in range(4):
        text = unquote_plus(text)
    text = unicodedata.normalize("NFKC", text).upper()
    return re.sub(r"[^A-Z0-9]", "", text)


# --- the mask ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "canonical", "masked"), [
    ("hkid", "A1234563", "A12****(3)"), ("hkid", "AB9876543", "AB98****(3)"),
    ("hkid", "G123456A", "G12****(A)"), ("hn", "HN12345678A", "HN12******(A)"),
    ("hn", "HN123456789", "HN12*******"), ("mrn", "MRN1234567", "MRN12*****"),
])
def test_one_mask_format(kind: str, canonical: str, masked: str) -> None:
    assert mask(kind, canonical) == masked
    assert mask_b(kind, canonical.encode()) == masked


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["hkid", "hn", "mrn"]),
       st.text(alphabet="ABCDEFGHNXYZ0123456789", min_size=0, max_size=14))
def test_fast_mask_is_the_mask(kind: str, canonical: str) -> None:
    """The scanner's ASCII fast path lives here and gives exactly :func:`mask`."""
    assert mask_b(kind, canonical.encode()) == mask(kind, canonical)


def test_every_output_masks_an_identifier_the_same_way() -> None:
    """The matcher, the free-text policy and the display mask agree."""
    for h in ("AB9876543", "A1234563", "G123456A"):
        m = mask("hkid", h)
        for written in synth.hkid_written_forms(h):
            assert redact(f"file {written}.csv") == f"file {m}.csv", written


# --- what is masked -----------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "out"), [
    ("HN35173745(2)_ward7_records.json", "HN35*******_ward7_records.json"),
    ("https://files.example/patient%20A1234563%20HN12345678A.xlsx",
     "https://files.example/patient%20A12****(3)%20HN12******(A).xlsx"),
    ("https://u:pw@h.example/x?id=A123456%283%29&q=AB987654+3",
     "https://h.example/x?id=A12****(3)&q=AB98****(3)"),
    ("patientA1234563.pdf", "patientA12****(3).pdf"),
    ("Ａ１２３４５６（３）.csv", "A12****(3).csv"),
    ("%2541%2531%2532%2533%2534%2535%2536%2533", "A12****(3)"),
    ("ward MRN-1234566 list", "ward MRN12***** list"),  # passes Luhn
    ("ward MRN-1234567 list", "ward MRN-1234567 list"),  # fails it
])
def test_examples(text: str, out: str) -> None:
    assert POLICY.redact(text) == out


@pytest.mark.parametrize("text", ["A123456(9)", "E364912{5}", "order 1234567", "Sheet1!C2",
                                  "2026-12-03T10:00:00Z", "https://paste.example/raw/AB12CD",
                                  "", "page 3", "archive.zip/export/patients.csv"])
def test_what_is_not_an_identifier_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_none_and_userinfo() -> None:
    assert redact(None) is None
    assert redact("see https://alice:s3cret@files.example/a and ftp://bob@h/x") == \
        "see https://files.example/a and ftp://h/x"
    assert "s3cret" not in (redact_line("crawl of https://a:s3cret@x.example failed") or "")
    assert redact("DNS lookup failed for 'soc:hunter2@127.0.0.1'") == \
        "DNS lookup failed for '127.0.0.1'"
    assert redact("mail soc@hospital.example at 10:30") == "mail soc@hospital.example at 10:30"


def test_configured_kinds_and_hn_pattern() -> None:
    cfg = MatchingConfig(hn=HnConfig(pattern=r"H\d{7}[A-Z]"), kinds=[MRN])
    p = Policy.from_config(cfg)
    assert p.redact("file H1234567X.csv") == "file H12*****(X).csv"
    mrn = luhn_mrn(random.Random(3))
    assert mrn[3:] not in (p.redact(f"id {mrn[:3]}-{mrn[3:]} x") or "")
    # the process-wide policy follows configure()
    old = redaction.policy()
    try:
        redaction.configure(cfg)
        assert redact("file H1234567X.csv") == "file H12*****(X).csv"
    finally:
        redaction._policy = old


def test_lines_and_errors() -> None:
    assert redact_line("a\nb\x1b[31mA1234563\r", 50) == "a b [31mA12****(3) "
    assert len(redact_line("x" * 500, 200) or "") == 200
    err = redact_error("bad value 'CHAN Tai Man' at offset 123456 for A123456(3)")
    assert "CHAN" not in err and "123456" not in err and "A12****(3)" in err


def test_log_records_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("leaksentry.test_redaction")
    handler = logging.Handler()
    seen: list[str] = []
    handler.emit = lambda r: seen.append(logging.Formatter().format(r))  # type: ignore
    logger.addHandler(handler)
    old = logging.getLogRecordFactory()
    redaction.install_log_redaction()
    redaction.install_log_redaction()  # idempotent
    try:
        logger.warning("fetch %s failed", "https://u:pw@x.example/A1234563.csv")
        try:
            raise ValueError("bad A123456(3)")
        except ValueError:
            logger.exception("oops %s", "HN12345678A")
    finally:
        logger.removeHandler(handler)
        logging.setLogRecordFactory(old)
    text = "\n".join(seen)
    assert "1234563" not in text and "123456(3)" not in text and "12345678" not in text
    assert "pw@" not in text and "A12****(3)" in text


# --- properties: every kind, every written and encoded form ---------------------------------

_CONTEXT = st.text(alphabet="abcxyz _-./?=&#:%+()[]（）　病人", max_size=12)


def _encode(text: str, how: str) -> str:
    if how == "plain":
        return text
    if how == "percent":
        return quote(text, safe="")
    if how == "percent-some":  # only the separators and non-ASCII encoded
        return quote(text, safe="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
    if how == "plus":
        return quote_plus(text)
    if how == "twice":
        return quote(quote(text, safe=""), safe="")
    if how == "letters":  # every character, letters and digits too
        return "".join(f"%{b:02X}" for b in text.encode())
    raise AssertionError(how)


_ENCODINGS = st.sampled_from(["plain", "percent", "percent-some", "plus", "twice", "letters"])


@st.composite
def identifiers(draw: st.DrawFn) -> tuple[str, str, str]:
    """(kind, canonical, written form)."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    kind = draw(st.sampled_from(["hkid", "hn", "mrn"]))
    if kind == "hkid":
        c = synth.hkid(rng)
        return kind, c, draw(st.sampled_from(synth.hkid_written_forms(c)))
    if kind == "hn":
        c = synth.hospital_number(rng)
        return kind, c, synth.written_hn(c, rng)
    c = luhn_mrn(rng)
    return kind, c, draw(st.sampled_from([c, f"MRN-{c[3:]}"]))


@settings(max_examples=1500, deadline=None)
@given(identifiers(), _CONTEXT, _CONTEXT, _ENCODINGS)
def test_no_identifier_survives_in_any_form(ident: tuple[str, str, str], before: str,
                                           after: str, how: str) -> None:
    kind, canonical, written = ident
    text = _encode(f"{before}{written}{after}", how)
    out = POLICY.redact(text) or ""
    # the context has no digits: any digit left came from the identifier or its mask
    digits = re.sub(r"\D", "", canonical)
    assert digits not in re.sub(r"\D", "", flat(out)), (text, out)
    assert "*" in out
    if how == "plain":
        assert mask(kind, canonical) in out


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(["A", "B", "a", "1", "23", "456", "7890", "(", ")", "[", "]",
                                 "-", "/", " ", "%", "2", "0", "+", "HN", "Ａ", "１", "（", "）"]),
                max_size=40).map("".join))
def test_redaction_is_total_and_idempotent(text: str) -> None:
    out = redact(text)
    assert isinstance(out, str)
    assert redact(out) == out


def test_the_policy_is_in_the_bottom_layer() -> None:
    """Importing it pulls in no upper layer (pipelines, crawler, scheduler, store, CLI)."""
    import subprocess
    import sys

    code = ("import sys, leaksentry.redaction, leaksentry.identifiers; print('\\n'.join("
            "m for m in sys.modules if m.split('.')[0] in ('pipelines', 'crawler', "
            "'scheduler', 'kibana') or m.startswith(('leaksentry.cli', 'leaksentry.demo', "
            "'leaksentry.store'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == ""


def test_custom_patterns_that_do_not_combine() -> None:
    """Two custom kinds with the same group name (or back-references) still work."""
    cfg = MatchingConfig(kinds=[
        KindConfig(name="aa", pattern=r"AA(?P<n>\d{6})"),
        KindConfig(name="bb", pattern=r"BB(?P<n>\d{6})(?P=n)"),
    ])
    p = Policy.from_config(cfg)
    assert p.redact("x AA123456 y BB111111111111") == "x AA12**** y BB11**********"
