"""Pictures inside Office and OpenDocument files: a screenshot of a patient table pasted
into a Word report, a slide or a workbook is a leak in image form.

OOXML keeps pictures as zip members under ``word/media/``, ``ppt/media/`` and
``xl/media/``; ODF under ``Pictures/``. Each raster picture goes through the extractor
as a member of its document (so OCR reads it, within the same page and time limits as
any image); a picture in a format OCR cannot read (EMF/WMF vector drawings, which can
hold bitmaps) is listed as skipped, never passed over as clean.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator

from pipelines.extract.archives import read_limited
from pipelines.extract.node import Node
from pipelines.extract.state import State, reason
from pipelines.model import TextPart

MEDIA_DIRS = ("word/media/", "ppt/media/", "xl/media/", "Pictures/")
RASTER = (".png", ".jpg", ".jpeg", ".jpe", ".tif", ".tiff", ".bmp", ".gif", ".webp")
VECTOR = (".emf", ".wmf", ".emz", ".wmz", ".svm")


def pictures(data: bytes, node: Node, state: State) -> Iterator[TextPart]:
    """Text read from the pictures of an OOXML/ODF document (``data`` is its zip)."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in zf.infolist()
                 if not i.is_dir() and i.filename.startswith(MEDIA_DIRS)]
    except (zipfile.BadZipFile, ValueError, OSError):
        return  # the document's own reader has said what is wrong with it
    for info in infos:
        name = info.filename.lower()
        child = node.child(info.filename)
        if name.endswith(VECTOR):
            state.skip(child.label, "unsupported",
                       f"{child.label}: vector drawing (EMF/WMF) is not read; a picture inside"
                       " it is not OCR'd")
            continue
        if not name.endswith(RASTER):
            continue
        state.member(child.label)
        try:
            with zf.open(info) as fp:
                content = read_limited(fp, state, child.label)
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
            state.skip(child.label, "corrupt", f"{child.label}: picture unreadable: {reason(e)}")
            continue
        yield from state.walk(content, child)
