"""Start-up: the commands that only read or print must not import the scanner, the crawler
or the network clients (issue 18). Each command runs in a fresh interpreter, as a user
runs it; the test asserts which modules were loaded, not how long it took."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: a fresh interpreter runs the real CLI entry point, then writes sys.modules to a file
#: (at exit, so that the command's own lazy imports are counted)
PROBE = """
import atexit, json, os, sys
def dump():
    with open(os.environ["MODULES_OUT"], "w") as f:
        json.dump(sorted(sys.modules), f)
atexit.register(dump)
sys.argv = ["leaksentry", *sys.argv[1:]]
from leaksentry.cli import main
main()
"""

#: never needed to print help, a version, a config check, the status or the hits
HEAVY = ("numpy", "hyperscan", "scrapy", "twisted", "playwright", "scrapy_playwright",
         "elasticsearch", "opensearchpy", "sqlalchemy", "psycopg", "lxml", "pypdf", "docx", "pptx",
         "py7zr", "openpyxl", "crawler", "pipelines.extract", "pipelines.alerts.channels",
         "pipelines.match.scanner", "pipelines.match.finder", "pipelines.match.kinds",
         "pipelines.process", "pipelines.match._speedups")
#: help and the version do not even read a config file (Typer itself validates a
#: subcommand's options with pydantic, so only the top level goes without it)
CONFIG_MODULES = ("leaksentry.config",)

CONFIG = """
[state]
dir = "{state}"

[[sources]]
name = "pastes"
kind = "watch"
url = "http://127.0.0.1:9/"
every = "2m"
"""


def loaded(tmp_path: Path, *args: str) -> set[str]:
    out = tmp_path / "modules.json"
    env = {**os.environ, "MODULES_OUT": str(out), "LEAKSENTRY_HOME": str(tmp_path / "home")}
    env.pop("LEAKSENTRY_CONFIG", None)
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True,
                          timeout=60, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    return set(json.loads(out.read_text()))


#: light parts of those packages: the guard's address policy (`config check` applies it)
LIGHT = {"crawler", "crawler.addresses"}


def heavy(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules - LIGHT
                  if any(m == n or m.startswith(n + ".") for n in names))


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["scan", "--help"],
                                  ["crawl", "--help"]])
def test_help_and_version_load_no_config_models_and_no_scanner(tmp_path, args):
    modules = loaded(tmp_path, *args)
    assert "leaksentry.cli" in modules  # the probe really ran the CLI
    assert heavy(modules, HEAVY) == []
    assert heavy(modules, CONFIG_MODULES) == []
    if len(args) == 1:
        assert heavy(modules, ("pydantic",)) == []
    if args == ["--version"]:  # prints one line: no Rich, no command module
        assert heavy(modules, ("rich", "leaksentry.cli.scan", "leaksentry.cli.crawl")) == []


def test_version_names_the_scanner_path_without_importing_it(tmp_path):
    env = {**os.environ, "LEAKSENTRY_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "leaksentry", "--version"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0
    from pipelines.match.finder import HAVE_HYPERSCAN
    from pipelines.match.speedups import speedups

    assert ("hyperscan" if HAVE_HYPERSCAN else "re") in proc.stdout
    built = "C speedups not built" not in proc.stdout and "C speedups" in proc.stdout
    assert built == (speedups() is not None) or os.environ.get("LEAKSENTRY_SPEEDUPS") == "0"


@pytest.mark.parametrize("command", [["config", "check"], ["status"], ["status", "--json"],
                                     ["hits"], ["hits", "--json"]])
def test_reading_commands_load_no_scanner_crawler_or_clients(tmp_path, command):
    cfg = tmp_path / "leaksentry.toml"
    cfg.write_text(CONFIG.format(state=tmp_path / "state"))
    modules = loaded(tmp_path, *command, "--config", str(cfg))
    assert "leaksentry.config" in modules
    assert heavy(modules, HEAVY) == []


#: a `scan --json` of a small text file needs the scanner and nothing that prints or reads
#: other formats: no Rich (nothing goes through it), no HTML/XML parser, no encoding
#: guesser (UTF-8), no other command's module (each is imported when its command runs)
NOT_FOR_A_TEXT_SCAN = ("rich", "lxml", "charset_normalizer", "scrapy", "twisted",
                       "playwright", "elasticsearch", "opensearchpy", "sqlalchemy", "pypdf",
                       "docx", "openpyxl", "leaksentry.cli.crawl", "leaksentry.cli.alerts",
                       "leaksentry.cli.evidence", "leaksentry.cli.status",
                       "leaksentry.cli.hits", "leaksentry.cli.demo", "leaksentry.store")


def test_scan_json_of_a_small_text_loads_only_the_scanner(tmp_path):
    from fixtures_register import fingerprint_people

    from leaksentry import synth

    people = list(synth.patients(5, seed=4))
    key, fp = fingerprint_people(tmp_path / "register", people)
    note = tmp_path / "note.txt"
    note.write_text("".join(f"seen {p.hkid}\n" for p in people))
    out = tmp_path / "modules.json"
    env = {**os.environ, "MODULES_OUT": str(out), "LEAKSENTRY_HOME": str(tmp_path / "home")}
    env.pop("LEAKSENTRY_CONFIG", None)
    proc = subprocess.run([sys.executable, "-c", PROBE, "scan", "--json", "--key", str(key),
                           "--fingerprints", str(fp), str(note)], capture_output=True,
                          timeout=60, env=env, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr.decode(errors="replace")[-2000:]  # matched
    assert json.loads(proc.stdout)["matched_records"] == len(people)
    modules = set(json.loads(out.read_text()))
    assert {"pipelines.match.scanner", "leaksentry.cli.scan"} <= modules
    assert heavy(modules, NOT_FOR_A_TEXT_SCAN) == []


def test_every_command_is_listed_and_registered_by_its_module(tmp_path):
    """The lazy command table names each command's module: help lists all of them, in
    the order they were registered, and each module registers what the table says."""
    import typer
    import typer.main

    from leaksentry.cli import COMMANDS, _commands_of, app

    group = typer.main.get_command(app)
    ctx = group.make_context("leaksentry", ["--help"], resilient_parsing=True)
    assert group.list_commands(ctx) == list(COMMANDS)
    by_module: dict[str, list[str]] = {}
    for name, module in COMMANDS.items():
        by_module.setdefault(module, []).append(name)
    for module, names in by_module.items():
        assert sorted(_commands_of(module)) == sorted(names)
        assert all(group.get_command(ctx, n) is not None for n in names)
    assert isinstance(app, typer.Typer)
    # every module of leaksentry.cli that registers commands is in the table
    import leaksentry.cli

    here = Path(leaksentry.cli.__file__).parent
    registering = {f.stem for f in here.glob("*.py")
                   if "\ndef register(app" in f.read_text(encoding="utf-8")}
    assert registering == set(COMMANDS.values())
