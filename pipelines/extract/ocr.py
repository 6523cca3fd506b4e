"""OCR of images and image-only PDF pages: Tesseract through tesserocr.

tesserocr calls Tesseract's C API in this process (its wheel bundles libtesseract and
leptonica; the language models come from Debian's tesseract-ocr-* packages). Against
pytesseract, which starts the ``tesseract`` program and reloads the models per image, it
measured 0.86 s against 1.19 s of CPU for an A4 table page at 150 dpi and 0.99 s against
1.48 s at 300 dpi (``eng``; bench/bench_ocr.py), and it takes a per-page timeout in the
API call itself. The engine is made once per worker process (and thread) and reused.

Every page or frame goes through :func:`page_text`, which enforces the limits: the pixel
count (checked from the image header, before decoding), the pages per document
(``ocr_max_pages``), and OCR's share of the document's time (``ocr_time_share``), given
to Tesseract as the page's timeout. What is not OCR'd (switched off, Tesseract missing, a
limit) is recorded with :meth:`State.skip`, never passed over as clean. OCR text goes
through :func:`pipelines.match.ocrfix.correct_hkids` before the matcher sees it.

tesserocr (24 ms), Pillow (10 ms) and pypdfium2 (30 ms) are imported when OCR runs:
:mod:`pipelines.extract` imports this module for :data:`IMAGE_KINDS`, and a scan of a
text file loads none of them (start-up, ``python -X importtime``).
"""

from __future__ import annotations

import io
import os
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leaksentry.config.extract import ExtractConfig
from pipelines.extract.node import Node
from pipelines.extract.state import Failed, State, reason
from pipelines.match.ocrfix import correct_hkids
from pipelines.model import Status, TextPart

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

IMAGE_KINDS = frozenset({"png", "jpeg", "tiff", "bmp", "gif", "webp"})

# Debian's (5.x, then 4.x) and the usual other places of the language models
_TESSDATA = ("/usr/share/tesseract-ocr/5/tessdata", "/usr/share/tesseract-ocr/4.00/tessdata",
             "/usr/share/tessdata", "/usr/local/share/tessdata")


def tessdata(config: ExtractConfig) -> Path | None:
    """The folder holding the configured language models, or None."""
    wanted = config.ocr_languages.split("+")
    env = os.environ.get("TESSDATA_PREFIX", "")
    for d in (config.ocr_tessdata,) if config.ocr_tessdata else (env, *_TESSDATA):
        if d and all((Path(d) / f"{lang}.traineddata").is_file() for lang in wanted):
            return Path(d)
    return None


def unavailable(config: ExtractConfig) -> str | None:
    """Why OCR cannot run under ``config`` (None when it can)."""
    if not config.ocr:
        return "OCR is switched off ([extract] ocr = false)"
    return _unavailable(config.ocr_languages, config.ocr_tessdata)


@cache
def _unavailable(languages: str, folder: str) -> str | None:
    try:
        import tesserocr  # noqa: F401
    except ImportError as e:
        return f"OCR unavailable: tesserocr not importable ({reason(e)})"
    if tessdata(ExtractConfig(ocr_languages=languages, ocr_tessdata=folder)) is None:
        return (f"OCR unavailable: Tesseract language models {languages!r} not found "
                f"(install tesseract-ocr-eng / tesseract-ocr-chi-tra or set ocr_tessdata)")
    return None


_ENGINES = threading.local()  # a Tesseract instance must not be shared between threads


def _engine(config: ExtractConfig) -> Any:
    """One Tesseract instance per (models, languages, mode) and thread, kept for the
    process's life (loading eng+chi_tra takes about 0.25 s)."""
    import tesserocr

    folder = tessdata(config)
    key = (str(folder), config.ocr_languages, config.ocr_psm)
    engines: dict[tuple[str, str, int], Any] = _ENGINES.__dict__.setdefault("by_key", {})
    api = engines.get(key)
    if api is None:
        api = tesserocr.PyTessBaseAPI(path=str(folder), lang=config.ocr_languages,
                                      psm=config.ocr_psm)
        engines[key] = api
    return api


def _deadline(state: State) -> float:
    cfg = state.config
    return min(state.deadline, state.started + cfg.time_limit * cfg.ocr_time_share)


def page_text(image: PILImage, where: str, state: State, dpi: int | None = None) -> str | None:
    """OCR one decoded page (a PIL image); None when a limit or an error stopped it (and
    it was recorded as skipped). Counts the page in ``details["ocr_pages"]``."""
    cfg = state.config
    details = state.details
    if details.get("ocr_pages", 0) >= cfg.ocr_max_pages:
        state.skip(where, "too_large", f"{where}: past the OCR limit of "
                                       f"{cfg.ocr_max_pages} pages per document")
        return None
    left = _deadline(state) - time.monotonic()
    if left <= 0.05:
        state.skip(where, "timeout", f"{where}: not OCR'd, OCR's share of the time limit "
                                     f"({cfg.ocr_time_share:g} of {cfg.time_limit:g} s) "
                                     f"was used up")
        return None
    try:
        api = _engine(cfg)
    except Exception as e:  # e.g. a damaged model file: every page would fail alike
        state.skip(where, "error", f"{where}: Tesseract could not start: {reason(e)}")
        return None
    if image.mode != "L":
        image = _grey(image)
    # raw 8-bit pixels: no encoding round trip (tesserocr's SetImage re-encodes a PIL image
    # in its own format, e.g. GIF, which its bundled leptonica cannot read); the buffer
    # must outlive recognition
    pixels = image.tobytes()
    details["ocr_pages"] = details.get("ocr_pages", 0) + 1
    try:
        api.SetImageBytes(pixels, image.width, image.height, 1, image.width)
        if dpi:
            api.SetSourceResolution(dpi)
        if not api.Recognize(timeout=max(1, int(left * 1000))):
            # layout analysis cannot be interrupted; recognition stops at the timeout and
            # what it read so far is kept, as for any document cut off at the time limit
            state.skip(where, "timeout", f"{where}: OCR stopped at the time limit, the "
                                         f"page was read in part")
        text = api.GetUTF8Text()
    except Exception as e:  # a Tesseract error on one page is that page's, not the run's
        state.skip(where, "error", f"{where}: OCR failed: {reason(e)}")
        return None
    finally:
        api.Clear()
    text, fixed = correct_hkids(text)
    if fixed:
        details["ocr_corrections"] = details.get("ocr_corrections", 0) + fixed
    return text


def image(data: bytes, node: Node, state: State) -> Iterator[TextPart]:
    """PNG, JPEG, TIFF, BMP, GIF, WebP: each frame OCR'd ("page 2" when there are several).
    The pixel count is read from the header and checked before anything is decoded."""
    why = unavailable(state.config)
    if why:
        raise Failed("unsupported", f"{node.label}: image not read: {why}")
    from PIL import Image, UnidentifiedImageError

    cfg = state.config
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # the pixel limit is ours (below), with the size in it
    try:
        with _quiet():
            img = Image.open(io.BytesIO(data))  # reads the header only
            multi = bool(getattr(img, "is_animated", False))
    except UnidentifiedImageError:
        raise Failed("corrupt", f"{node.label}: image unreadable (damaged header)") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise Failed("corrupt", f"{node.label}: image unreadable: {reason(e)}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    with img:
        frame = 0
        while True:
            where = node.at(f"page {frame + 1}") if multi else node.label
            w, h = img.size
            if w * h > cfg.ocr_max_pixels:
                why = (f"{where}: image of {w} x {h} pixels exceeds the OCR limit of "
                       f"{cfg.ocr_max_pixels} pixels (ocr_max_pixels)")
                if not multi:
                    raise Failed("too_large", why)
                state.skip(where, "too_large", why)
            else:
                text = _frame_text(img, where, state, multi)
                if text and text.strip():
                    yield TextPart(text, node.at(f"page {frame + 1}") if multi
                                   else node.location)
            frame += 1
            state.tick()
            if not multi:
                return
            try:
                with _quiet():
                    img.seek(frame)
            except (EOFError, ValueError):
                return
            except Exception as e:
                state.skip(node.at(f"page {frame + 1}"), "corrupt",
                           f"{node.label}: frames from {frame + 1} on unreadable: {reason(e)}")
                return
            if state.details.get("ocr_pages", 0) >= cfg.ocr_max_pages:
                state.skip(node.at(f"page {frame + 1}"), "too_large",
                           f"{node.label}: frames from {frame + 1} on not OCR'd (limit of "
                           f"{cfg.ocr_max_pages} pages per document, ocr_max_pages)")
                return


@contextmanager
def _quiet() -> Iterator[None]:
    """Pillow warns about damaged metadata (EXIF, ICC) on stderr; the status says enough."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _frame_text(img: PILImage, where: str, state: State, multi: bool) -> str | None:
    try:
        with _quiet():
            img.load()
    except Exception as e:  # truncated or corrupt pixel data
        if not multi:
            raise Failed("corrupt", f"{where}: image unreadable: {reason(e)}") from None
        state.skip(where, "corrupt", f"{where}: image unreadable: {reason(e)}")
        return None
    return page_text(img, where, state)


def _grey(image: PILImage) -> PILImage:
    """Greyscale, with transparent parts on white (a transparent PNG's text is often drawn
    on nothing)."""
    if "A" in image.getbands() or (image.mode == "P" and "transparency" in image.info):
        from PIL import Image

        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("L")
    return image.convert("L")


def blocked(state: State) -> tuple[Status, str] | None:
    """(status, reason) when no more OCR may run in this document: switched off or
    unavailable, the page limit reached, or OCR's share of the time used up."""
    cfg = state.config
    why = unavailable(cfg)
    if why:
        return "unsupported", why
    if state.details.get("ocr_pages", 0) >= cfg.ocr_max_pages:
        return "too_large", (f"past the OCR limit of {cfg.ocr_max_pages} pages per document "
                             f"(ocr_max_pages)")
    if _deadline(state) - time.monotonic() <= 0.05:
        return "timeout", (f"OCR's share of the time limit ({cfg.ocr_time_share:g} of "
                           f"{cfg.time_limit:g} s) was used up")
    return None


class PdfPages:
    """Renders a PDF's text-less pages (pypdfium2) and OCRs them; opened on first use.
    Pages that cannot be OCR'd (switched off, the page limit, the time share) are listed
    as one skipped entry per reason ("pages 201-10000") when it is closed."""

    def __init__(self, data: bytes, password: str | None, node: Node, state: State) -> None:
        self.data, self.password, self.node, self.state = data, password, node, state
        self._doc: Any = None
        self._unread: dict[tuple[Status, str], list[int]] = {}

    def _page(self, i: int) -> Any:
        if self._doc is None:
            import pypdfium2

            self._doc = pypdfium2.PdfDocument(self.data, password=self.password or None)
        return self._doc[i]

    def mostly_image(self, i: int) -> bool:
        """True when images cover at least half of page ``i``: a scan with a line of text
        on it (a fax header, a "Page 1 of 3" stamp), whose image is read by OCR too."""
        try:
            page = self._page(i)
            w, h = page.get_size()
            covered = 0.0
            for n, obj in enumerate(page.get_objects(filter=(3,), max_depth=2)):  # images
                if n >= 64:
                    break
                left, bottom, right, top = obj.get_bounds()
                covered += max(0.0, min(right, w) - max(left, 0.0)) * \
                    max(0.0, min(top, h) - max(bottom, 0.0))
            return bool(covered >= 0.5 * w * h)
        except Exception:  # the text layer was read; a page pdfium cannot parse stays so
            return False

    def text(self, i: int) -> str | None:
        """OCR text of page ``i`` (0-based); None for a blank page or one that was skipped
        (then recorded)."""
        state, cfg = self.state, self.state.config
        where = self.node.at(f"page {i + 1}")
        try:
            page = self._page(i)
            w, h = page.get_size()
            # a quick look (at most a megapixel) tells a blank page, which needs nothing,
            # from one with content: 10,000 blank pages cost seconds, not minutes
            probe = page.render(scale=min(0.5, (1e6 / max(w * h, 1)) ** 0.5),
                                grayscale=True).to_pil()
            lo, hi = probe.getextrema()
            if hi - lo < 32:  # blank (or one flat colour): nothing to read
                return None
            stop = blocked(state)
            if stop is not None:  # listed once per reason, with the pages, on close()
                self._unread.setdefault(stop, []).append(i + 1)
                return None
            dpi = cfg.ocr_dpi
            if w * h * (dpi / 72) ** 2 > cfg.ocr_max_pixels:
                state.skip(where, "too_large", f"{where}: a {w:.0f} x {h:.0f} pt page at "
                                               f"{dpi} dpi exceeds ocr_max_pixels "
                                               f"({cfg.ocr_max_pixels})")
                return None
            img = page.render(scale=dpi / 72, grayscale=True).to_pil()
        except Exception as e:  # pdfium could not open or draw it: the page is unread
            state.skip(where, "corrupt", f"{where}: page has no text layer and could not "
                                         f"be rendered for OCR: {reason(e)}")
            return None
        return page_text(img, where, state, dpi=dpi)

    def close(self) -> None:
        """Lists the pages left unread (one entry per reason) and frees the document."""
        for (status, why), pages in self._unread.items():
            first, last = pages[0], pages[-1]
            where = self.node.at(f"page {first}" if first == last
                                 else f"pages {first}-{last}")
            count = "1 scanned page" if len(pages) == 1 else f"{len(pages)} scanned pages"
            self.state.skip(where, status, f"{where}: {count} not read: {why}")
        self._unread.clear()
        if self._doc is not None:
            self._doc.close()
            self._doc = None
