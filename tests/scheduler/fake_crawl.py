"""A stand-in for `leaksentry crawl NAME --config FILE`, used as [daemon] crawl_command.

Why: the scheduler's behaviour around a crawl (on time, timeouts, SIGTERM,
SIGKILL, orphans after kill -9, exit codes) must be tested with crawls that
hang, ignore SIGTERM or die on demand, which a real spider against a real
server cannot be made to do reliably. It records its RunSummary through the
same store API as the real crawl. Real crawls are tested in test_daemon_real.py.

Behaviour per source comes from fake_crawl.json next to the config file:
{"NAME": {"mode": "ok" | "slow" | "hang" | "stubborn" | "fail" | "crash",
          "sleep": seconds}}; default "ok". Every start and end is appended
to crawls.log next to the config file. The daemon hands crawls its config
snapshot in the state dir: then "next to the config file" is $FAKE_CRAWL_HOME
(the harness sets it). Like the real crawl it refuses a config whose hash is
not --config-sha256 (exit 2).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path


def main() -> int:
    name, config = sys.argv[1], Path(sys.argv[sys.argv.index("--config") + 1])
    sha = sys.argv[sys.argv.index("--config-sha256") + 1] if "--config-sha256" in sys.argv \
        else None
    here = Path(os.environ.get("FAKE_CRAWL_HOME") or config.parent)
    spec = (
        json.loads((here / "fake_crawl.json").read_text()).get(name, {})
        if (here / "fake_crawl.json").exists()
        else {}
    )
    mode = spec.get("mode", "ok")
    log = here / "crawls.log"

    def note(event: str) -> None:
        with log.open("a") as fh:
            fh.write(f"{event} {name} {os.getpid()} {time.time():.3f}\n")

    note("start")
    started = datetime.now(UTC)
    if mode == "hang":
        # a grandchild in the same process group, like Chromium under a spider
        child = subprocess.Popen(["sleep", "1000"])
        (here / f"{name}.grandchild").write_text(str(child.pid))
        time.sleep(10_000)
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(10_000)
    if mode == "slow":
        time.sleep(float(spec.get("sleep", 30)))
    if mode == "crash":
        print("fake crawl: something broke badly", flush=True)
        return 3

    from leaksentry.config import load_config
    from leaksentry.errors import ConfigError
    from leaksentry.store import Store
    from leaksentry.store.runs import record_run
    from pipelines.model import RunSummary

    try:
        settings = load_config(config, sha256=sha)
    except ConfigError as exc:
        print(f"fake crawl: {exc}", flush=True)
        return 2
    store = Store(settings.state.db)
    outcome = "error" if mode == "fail" else "ok"
    with store.transaction() as tx:
        record_run(
            tx,
            RunSummary(
                source=name,
                started_at=started,
                finished_at=datetime.now(UTC),
                outcome=outcome,
                discovered=2,
                fetched=2,
                new=1,
                error="fake failure" if outcome == "error" else None,
            ),
        )
    note("end")
    print(f"fake crawl of {name}: {outcome}", flush=True)
    return 0 if outcome == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
