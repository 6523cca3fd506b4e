"""OCR throughput and recall: an A4 page of a patient table (40 fictional register rows)
OCR'd on one core at 150 and 300 dpi, and recall through the real matcher on the target set
(a 20-row screenshot, a 25-page scanned PDF).

    .venv/bin/python bench/bench_ocr.py [--rows 40] [--repeat 3] [--no-recall]

Pages/s are from CPU time (Tesseract runs on one thread here; ``OMP_THREAD_LIMIT=1`` is set
for Debian's OpenMP build of the tesseract program), so a loaded machine shows in the wall
time but not in the rate. pytesseract (not a dependency) is measured beside tesserocr when
it is installed, for the README's choice of binding. Prints figures only, never an
identifier.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_THREAD_LIMIT", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import machine_speed, report

from leaksentry.config.extract import ExtractConfig
from leaksentry.synth import patients, register_rows, table_image
from pipelines.extract.ocr import tessdata, unavailable

HEADER = ["Name", "Sex", "HKID", "Hospital No", "Procedure"]


def rows(people, header=True) -> list[list[str]]:
    body = [[p.name, p.gender, f"{p.hkid[:-1]}({p.hkid[-1]})", p.hn, p.procedure]
            for p in people]
    return [HEADER, *body] if header else body


def _tesserocr(img, config: ExtractConfig, repeat: int) -> tuple[float, float]:
    """(CPU s, wall s) per page through the extractor's engine (tesserocr)."""
    from pipelines.extract.ocr import page_text
    from pipelines.extract.state import State

    cpu = wall = 0.0
    for _ in range(repeat):
        state = State(config, 0)
        c, t = time.process_time(), time.perf_counter()
        page_text(img, "page 1", state)
        cpu += time.process_time() - c
        wall += time.perf_counter() - t
    return cpu / repeat, wall / repeat


def _pytesseract(img, config: ExtractConfig, repeat: int) -> tuple[float, float] | None:
    try:
        import pytesseract
    except ImportError:
        return None
    cpu = wall = 0.0
    for _ in range(repeat):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        c, t = time.process_time(), time.perf_counter()
        pytesseract.image_to_string(img, lang=config.ocr_languages,
                                    config=f"--psm {config.ocr_psm}")
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu += time.process_time() - c + (r1.ru_utime - r0.ru_utime) \
            + (r1.ru_stime - r0.ru_stime)
        wall += time.perf_counter() - t
    return cpu / repeat, wall / repeat


def throughput(n_rows: int, repeat: int) -> None:
    page = rows(list(patients(n_rows, seed=21)))
    print(f"bench_ocr: one A4 page, a table of {n_rows} fictional patients, psm 6, one core")
    out = []
    for dpi in (150, 300):
        img = table_image(page, dpi)
        for langs in ("eng", "eng+chi_tra"):
            config = ExtractConfig(ocr_languages=langs)
            cpu, wall = _tesserocr(img, config, repeat)
            out.append((f"{dpi} dpi {langs:<12} tesserocr",
                        f"{1 / cpu:5.2f} pages/s  ({cpu:.2f} s CPU, {wall:.2f} s wall)"))
            other = _pytesseract(img, config, repeat)
            if other:
                cpu, wall = other
                out.append((f"{dpi} dpi {langs:<12} pytesseract",
                            f"{1 / cpu:5.2f} pages/s  ({cpu:.2f} s CPU, {wall:.2f} s wall)"))
    report(out)


def _scanned_pdf(people, per_page: int, dpi: int) -> bytes:
    pages = [table_image(rows(people[i:i + per_page], header=i == 0), dpi)
             for i in range(0, len(people), per_page)]
    buf = io.BytesIO()
    pages[0].save(buf, "PDF", save_all=True, append_images=pages[1:], resolution=dpi)
    return buf.getvalue()


def recall() -> None:
    from pipelines.match import Matcher, build_fingerprints, generate_key, read_key
    from pipelines.process import scan_inline

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        with (tmp / "register.csv").open("w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(register_rows(300, seed=3))
        generate_key(tmp / "key")
        build_fingerprints(tmp / "register.csv", read_key(tmp / "key"), tmp / "fp",
                           hkid_column="hkid", hn_column="hn", ref_column="ref")
        matcher = Matcher.load(tmp / "key", tmp / "fp")
        print("recall on the target set (planted fictional records matched / planted), "
              "default languages (eng+chi_tra)")
        out = []
        for dpi in (150, 200, 300):
            config = ExtractConfig(ocr_dpi=dpi)
            shot = list(patients(20, seed=3))
            buf = io.BytesIO()
            table_image(rows(shot), dpi, inches=(7.5, 5.5)).save(buf, "PNG")
            t = time.perf_counter()
            r = scan_inline(buf.getvalue(), "shot.png", matcher, config)
            out.append((f"20-row screenshot   {dpi} dpi",
                         f"recall {len(r.record_refs) / len(shot):.2f}  "
                         f"({r.ocr_pages} page, {time.perf_counter() - t:.1f} s)"))
            scan = list(patients(50, seed=3))
            t = time.perf_counter()
            r = scan_inline(_scanned_pdf(scan, 2, dpi), "scan.pdf", matcher, config)
            out.append((f"25-page scanned PDF {dpi} dpi",
                         f"recall {len(r.record_refs) / len(scan):.2f}  "
                         f"({r.ocr_pages} pages, {time.perf_counter() - t:.1f} s, "
                         f"{r.details.get('ocr_corrections', 0)} HKIDs repaired)"))
        report(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-recall", action="store_true")
    args = ap.parse_args()
    why = unavailable(ExtractConfig())
    if why:
        print(f"bench_ocr: skipped, {why}")
        return
    import tesserocr

    print(f"Tesseract {tesserocr.tesseract_version().split()[1]} (tesserocr "
          f"{tesserocr.__version__}), models in {tessdata(ExtractConfig())}; "
          f"machine speed {machine_speed():.2f} s")
    throughput(args.rows, args.repeat)
    if not args.no_recall:
        recall()


if __name__ == "__main__":
    main()
