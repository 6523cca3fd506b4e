"""redis-server fixtures: a real Redis (Debian package ``redis-server``) for the cluster
tests, started as the test user on a free loopback port in a temp dir, without
persistence (``save ""``), and stopped at teardown.

- ``redis_server``: a function-scoped :class:`RedisProcess`; ``restart()`` stops and
  starts it again on the same port (the "Redis restarted mid-run" fault).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REDIS_SERVER = "/usr/bin/redis-server"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RedisProcess:
    binary: str
    dir: Path
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> RedisProcess:
        self.port = self.port or _free_port()
        conf = self.dir / "redis.conf"
        conf.write_text(f'port {self.port}\nbind 127.0.0.1\ndir {self.dir}\nsave ""\n'
                        f'appendonly no\nprotected-mode yes\nlogfile {self.dir}/redis.log\n')
        self.proc = subprocess.Popen([self.binary, str(conf)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ping():
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        log = (self.dir / "redis.log").read_text(errors="replace")[-2000:] \
            if (self.dir / "redis.log").exists() else ""
        raise RuntimeError(f"redis-server did not start on port {self.port}: {log}")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory):
    binary = REDIS_SERVER if Path(REDIS_SERVER).exists() else shutil.which("redis-server")
    if not binary:
        pytest.skip("redis-server is not installed (Debian package redis-server;"
                    " `make system-deps`)")
    srv = RedisProcess(binary, tmp_path_factory.mktemp("redis")).start()
    yield srv
    srv.stop()
