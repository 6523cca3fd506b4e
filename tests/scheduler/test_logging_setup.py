"""JSON log lines carry the ``extra`` fields as keys."""

from __future__ import annotations

import json
import logging

from scheduler.logging_setup import JsonFormatter, setup_logging


def test_json_formatter_fields():
    rec = logging.makeLogRecord({"name": "leaksentry.x", "levelno": logging.WARNING,
                                 "levelname": "WARNING", "msg": "crawl of %s: %s",
                                 "args": ("feed1", "timeout"), "source": "feed1",
                                 "returncode": -9, "obj": object()})
    out = json.loads(JsonFormatter().format(rec))
    assert out["msg"] == "crawl of feed1: timeout" and out["level"] == "warning"
    assert out["source"] == "feed1" and out["returncode"] == -9
    assert out["logger"] == "leaksentry.x" and out["ts"].endswith("+00:00")
    assert isinstance(out["obj"], str)


def test_setup_logging_json_to_stderr(capsys):
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        setup_logging("json", "DEBUG")
        logging.getLogger("leaksentry.t").info("hello %d", 5, extra={"job": "outbox"})
        line = capsys.readouterr().err.strip().splitlines()[-1]
        assert json.loads(line)["job"] == "outbox"
        assert logging.getLogger("apscheduler").level == logging.WARNING
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
