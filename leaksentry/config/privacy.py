"""[privacy]: what a hit may keep of the document's own text.

```toml
[privacy]
context = "none"          # default: no document text is stored or sent with a hit
# context = "masked-text" # keep short context snippets around matches (identifiers
#                         # masked). They KEEP DOCUMENT TEXT (patient names, procedures):
#                         # a second copy of what leaked, in SQLite, Elasticsearch, alerts.
```
"""

from __future__ import annotations

from typing import Literal

from leaksentry.config.base import StrictModel


class PrivacyConfig(StrictModel):
    """``context = "masked-text"`` is an explicit opt-in to storing document text."""

    context: Literal["none", "masked-text"] = "none"

    @property
    def keeps_text(self) -> bool:
        return self.context == "masked-text"
