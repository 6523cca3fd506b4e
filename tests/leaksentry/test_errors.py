"""The exception tree: every exception class the project defines is a LeakSentryError
(or one of the internal signals errors.py names), and errors.py's drawing shows it."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import leaksentry.errors as errors
from leaksentry.errors import LeakSentryError, retryable_status

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("crawler", "pipelines", "scheduler", "kibana", "leaksentry")
#: control-flow signals that never leave their module (errors.py says why)
INTERNAL = {"pipelines.extract.state.Stop", "pipelines.extract.state.Failed",
            "pipelines.process._Timeout", "pipelines.process._Died",
            "crawler.spiders.bucket.NotAListing", "pipelines.localfile.NotRead"}


def _exception_classes() -> dict[str, str]:
    """Qualified name -> class name of every class whose base looks like an exception
    (a name ending in Error/Exception, or another class found so)."""
    found: dict[str, str] = {}
    names: set[str] = {"Exception"}
    trees = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            trees.append((module, ast.parse(path.read_text())))
    changed = True
    while changed:  # bases defined in other modules: repeat until nothing new is found
        changed = False
        for module, tree in trees:
            for node in tree.body:
                if not isinstance(node, ast.ClassDef):
                    continue
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "")
                         for b in node.bases}
                if any(b in names or b.endswith(("Error", "Exception")) for b in bases):
                    qual = f"{module}.{node.name}"
                    if qual not in found:
                        found[qual] = node.name
                        names.add(node.name)
                        changed = True
    return found


def test_every_project_exception_is_in_the_tree_and_drawn() -> None:
    classes = _exception_classes()
    assert "pipelines.alerts.channels.base.ChannelError" in classes  # the scan works
    drawing = errors.__doc__ or ""
    for qual, name in classes.items():
        module, _, _ = qual.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        if qual in INTERNAL:
            assert not issubclass(cls, LeakSentryError), qual
            assert name in drawing, f"{qual}: an internal signal errors.py does not name"
            continue
        assert issubclass(cls, LeakSentryError), (
            f"{qual} is not a LeakSentryError: derive it from the tree in leaksentry/errors.py")
        assert re.search(rf"(── |^    ){name}\b", drawing, re.MULTILINE), (
            f"{qual}: draw it in leaksentry/errors.py's docstring")


def test_retryable_is_said_one_way() -> None:
    from pipelines.alerts.channels.base import ChannelError, http_status_error
    from pipelines.sinks.errors import SinkError, UnsupportedFeature

    assert not LeakSentryError("x").retryable
    assert [s for s in (400, 401, 404, 408, 409, 425, 429, 500, 503) if retryable_status(s)] \
        == [408, 425, 429, 500, 503]
    assert http_status_error("hook", 503).retryable and not http_status_error("hook", 404).retryable
    assert ChannelError("x").retryable and not ChannelError("x", retryable=False).retryable
    assert SinkError("x", unreachable=True).retryable
    assert SinkError("x", status=429).retryable and not SinkError("x", status=401).retryable
    assert not SinkError("no url configured").retryable
    assert not UnsupportedFeature("x", status=400).retryable
