"""The demo runner degrades instead of crashing when a component fails, and cleans up
after itself."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from leaksentry.demo import runner
from leaksentry.demo.report import render
from leaksentry.errors import InputError


def _no_fingerprints(sc, cfg=None) -> str:
    raise RuntimeError("stub failure (not under test)")


def test_without_fingerprints_sources_are_skipped_and_reported(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(runner, "make_fingerprints", _no_fingerprints)
    steps: list[tuple[str, str, str]] = []
    root = tmp_path / "demo"
    run = runner.run_demo(root, export_rows=30, progress=lambda *a: steps.append(a))
    assert not root.exists(), "the demo directory must be removed without --keep"
    assert run.fingerprints is None
    assert [s.name for s in run.sources] == ["pastes", "open-directory", "forum",
                                             "watched-link"]
    assert all(not s.available and s.outcome == "skipped" for s in run.sources)
    assert run.missing == ["fingerprints: stub failure (not under test)"]
    assert ("crawl:forum", "skip", "no fingerprints") in steps
    assert run.hits == [] and run.alerts == []
    out = io.StringIO()
    ok = render(run, Console(file=out, width=140), kept=False)
    text = out.getvalue()
    assert not ok
    assert "Not available yet" in text and "fingerprints: stub failure" in text
    assert "0/6 planted leaks found" in text


def test_keep_leaves_the_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(runner, "make_fingerprints", _no_fingerprints)  # and so no crawl
    root = tmp_path / "demo"
    run = runner.run_demo(root, keep=True, export_rows=30)
    assert (root / "leaksentry.toml").exists() and (root / "expected.json").exists()
    assert run.to_json()["config"] == str(root / "leaksentry.toml")


def test_dir_must_be_new_empty_or_an_earlier_demo(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(runner, "make_fingerprints", _no_fingerprints)  # and so no crawl
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "leaksentry.toml").write_text("# the user's own config\n")
    with pytest.raises(InputError, match="not made by the demo"):
        runner.run_demo(foreign, keep=True, export_rows=30)
    assert (foreign / "leaksentry.toml").read_text() == "# the user's own config\n"

    root = tmp_path / "demo"
    runner.run_demo(root, keep=True, export_rows=30)
    (root / "state" / "leftover").write_text("x")
    runner.run_demo(root, keep=True, export_rows=30)  # a rerun clears the earlier demo
    assert not (root / "state" / "leftover").exists()
    assert (root / "expected.json").exists()
    runner.run_demo(root, export_rows=30)  # without --keep: removed, directory included
    assert not root.exists()
