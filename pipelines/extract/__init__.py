"""Bytes in, text parts out (placeholder: the extraction issue replaces the internals).

Contract (keep it): ``extract(data, name, config, passwords)`` returns an
:class:`Extraction`; iterate ``extraction.parts()`` once, after which
``status``, ``error`` and ``details`` are final. Extraction never raises for
bad input: it records a status.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from leaksentry.config.extract import ExtractConfig
from pipelines.model import CELL_SEP, TextPart


@dataclass
class Extraction:
    data: bytes
    name: str
    config: ExtractConfig
    passwords: tuple[str, ...] = ()
    status: str = "ok"
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def parts(self) -> Iterator[TextPart]:
        text = self.data.decode("utf-8", errors="replace")
        if self.name.lower().endswith((".csv", ".tsv")):
            delim = "\t" if self.name.lower().endswith(".tsv") else ","
            for i, row in enumerate(csv.reader(io.StringIO(text), delimiter=delim), start=1):
                yield TextPart(CELL_SEP.join(c.replace(CELL_SEP, " ") for c in row),
                               location=self.name, row=i)
        else:
            yield TextPart(text, location=self.name)


def extract(data: bytes, name: str = "", config: ExtractConfig | None = None,
            passwords: Iterable[str] = ()) -> Extraction:
    return Extraction(data, name, config or ExtractConfig(), tuple(passwords))
