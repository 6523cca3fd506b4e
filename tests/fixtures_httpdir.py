"""An open-directory listing over loopback: Python's own ``http.server``
(SimpleHTTPRequestHandler) serving a directory.

- :class:`DirServer`: start it over any directory (tests that cannot use a
  function-scoped fixture, e.g. under hypothesis, import it by name);
- ``http_server_dir``: a fixture yielding ``(root, url)`` for a fresh empty directory.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


class DirServer:
    """Python's own http.server over ``root`` on a free loopback port, quiet."""

    def __init__(self, root: Path) -> None:
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def http_server_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """``(root, url)``: a fresh directory served by :class:`DirServer`."""
    root = tmp_path / "pydir"
    root.mkdir()
    srv = DirServer(root)
    yield root, srv.url
    srv.close()
