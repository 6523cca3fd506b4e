"""No silent misses: content that could not be read is listed in ``skipped`` (masked), and a
document with skipped content is never plain "ok, nothing in it"."""

from __future__ import annotations

import io
import zipfile

from pipelines.extract import extract


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_zip_with_unsupported_and_leaking_member_lists_the_skipped_one(ext, people):
    rows = "\n".join(f"{p.name},{p.hkid},{p.hn}" for p in people).encode()
    data = _zip({"export/patients.csv": rows,
                 "program.exe": b"MZ" + b"\x90" * 200})
    r = ext.run(data, "backup.zip")
    r.assert_all_found(people)
    assert r.status == "ok"  # an unsupported member leaves the zip readable ...
    assert [(s.where, s.status) for s in r.ex.skipped] == [("backup.zip/program.exe",
                                                           "unsupported")]  # ... but listed
    assert "unsupported type exe" in r.ex.skipped[0].error


def test_skipped_member_names_are_masked(ext, people):
    p = people[0]
    data = _zip({f"{p.hkid}.bin": b"MZ" + b"\x00" * 100})
    r = ext.run(data, "a.zip")
    [s] = r.ex.skipped
    assert s.where.startswith("a.zip/") and s.status == "unsupported"
    ext.no_identifiers(f"{s.where} {s.error}", people)


def test_corrupt_and_encrypted_members_are_skipped_and_noted(ext):
    import pyzipper

    buf = io.BytesIO()
    with pyzipper.AESZipFile(buf, "w", compression=pyzipper.ZIP_DEFLATED,
                             encryption=pyzipper.WZ_AES) as zf:
        zf.setpassword(b"not-a-candidate")
        zf.writestr("locked.csv", "a,b\n1,2\n")
    r = ext.run(buf.getvalue(), "x.zip")
    assert r.status == "encrypted"
    assert [(s.where, s.status) for s in r.ex.skipped] == [("x.zip/locked.csv", "encrypted")]


def test_too_deep_member_is_skipped(ext):
    from leaksentry.config.extract import ExtractConfig

    data = b"a,b\n1,2\n"
    for i in range(4):
        data = _zip({f"level{i}.zip" if i else "inner.csv": data})
    r = ext.run(data, "deep.zip", ExtractConfig(max_depth=2))
    assert r.status == "too_large"
    assert [s.status for s in r.ex.skipped] == ["too_large"]


def test_skipped_list_is_bounded():
    from pipelines.extract.state import MAX_SKIPPED

    data = _zip({f"m{i}.exe": b"MZ" + b"\x00" * 10 for i in range(MAX_SKIPPED + 7)})
    ex = extract(data, "many.zip")
    list(ex.parts())
    assert len(ex.skipped) == MAX_SKIPPED and ex.details["skipped_more"] == 7
