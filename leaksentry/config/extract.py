"""[extract] configuration section: every limit the extractor enforces.

Each limit, when hit, gives the document a recorded status (``too_large``,
``timeout`` ...) instead of a crash or a hang; see pipelines/extract.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from leaksentry.config.base import Duration, StrictModel

MiB = 1024 * 1024


class ExtractConfig(StrictModel):
    #: documents larger than this are not extracted (status too_large)
    max_input_bytes: int = Field(default=512 * MiB, gt=0)
    #: total bytes produced by decompression and decoding, over all nested members
    max_expanded_bytes: int = Field(default=1024 * MiB, gt=0)
    #: expanded bytes / input bytes; checked once the expansion exceeds ratio_floor_bytes
    max_expansion_ratio: float = Field(default=200.0, gt=1)
    #: small inputs may expand by any ratio up to this many bytes (a 1 kB zip of a 2 MB CSV)
    ratio_floor_bytes: int = Field(default=16 * MiB, ge=0)
    #: archives in archives (and encoded blobs in text) deeper than this are not opened
    max_depth: int = Field(default=5, ge=0)
    #: archive members opened per document, over all levels
    max_members: int = Field(default=10_000, gt=0)
    #: text parts produced per document (a table row is one part)
    max_parts: int = Field(default=5_000_000, gt=0)
    #: extraction + matching of one document; the worker is killed after this plus kill_grace
    time_limit: Duration = Field(default=60.0, gt=0)
    kill_grace: Duration = Field(default=2.0, ge=0)
    #: address-space headroom for the scanning worker beyond what it inherits (0 = no limit)
    worker_memory_bytes: int = Field(default=2048 * MiB, ge=0)
    #: "warm" keeps one worker and sends it documents; "fork" forks one per document;
    #: "inline" scans in-process (cooperative time limit only)
    worker_mode: str = Field(default="warm", pattern="^(fork|warm|inline)$")
    #: a warm worker is replaced after this many documents (bounds memory drift)
    worker_max_documents: int = Field(default=1000, gt=0)
    #: base64 / hex runs at least this long are decoded and extracted as embedded files
    blob_min_length: int = Field(default=128, ge=16)
    #: plain text longer than this is split at line ends into several parts
    text_chunk_chars: int = Field(default=4 * MiB, ge=1024)
    #: tried on encrypted ZIP/7z/PDF, after the passwords passed with the document
    passwords: list[str] = Field(
        default_factory=lambda: ["infected", "password", "123456", "12345678", "1234"]
    )

    # --- OCR of images and image-only PDF pages (Tesseract through tesserocr) ---
    #: run OCR; when false, images and text-less PDF pages are listed as skipped
    ocr: bool = True
    #: Tesseract language models joined by "+", as installed (Debian: tesseract-ocr-eng,
    #: tesseract-ocr-chi-tra)
    ocr_languages: str = Field(default="eng+chi_tra", min_length=1)
    #: resolution at which image-only PDF pages are rendered for OCR
    ocr_dpi: int = Field(default=200, ge=72, le=600)
    #: Tesseract page segmentation mode: 6 (one uniform block: tables, ID lists) or 4
    #: (a column of text of variable sizes) or 3 (automatic)
    ocr_psm: int = Field(default=6, ge=3, le=13)
    #: images, TIFF frames and PDF pages OCR'd per document; the rest are listed as skipped
    ocr_max_pages: int = Field(default=200, gt=0)
    #: an image (or rendered page) with more pixels than this is not decoded (too_large)
    ocr_max_pixels: int = Field(default=60_000_000, gt=0)
    #: share of time_limit that OCR may use; a page that would pass it is cut off
    ocr_time_share: float = Field(default=0.7, gt=0, le=1)
    #: the tessdata folder; "" finds it (TESSDATA_PREFIX, then Debian's paths)
    ocr_tessdata: str = ""

    @field_validator("ocr_languages")
    @classmethod
    def _languages(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_]+(?:\+[A-Za-z0-9_]+)*", value):
            raise ValueError(f"ocr_languages {value!r}: Tesseract model names joined by "
                             f"'+', e.g. 'eng+chi_tra'")
        return value
