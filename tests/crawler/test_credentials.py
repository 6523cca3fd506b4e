"""Credentials never follow a redirect to another origin (issue 20, item 6).

Through the real CLI: a source whose token is sent as a custom header (``X-Api-Key``)
and which has a credential-like configured header (``X-Session``) redirects once within
its origin and once to another origin (another loopback port). The first hop keeps the
credentials; the other origin receives none of them, only the harmless header.
"""

from __future__ import annotations

from servers.loopback import QuietHandler

TOKEN = "tok-7f3a9c"


def _recorder(target: str | None = None) -> type[QuietHandler]:
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            self.server.seen.append((self.path, dict(self.headers)))  # type: ignore[attr-defined]
            if self.path == "/away" and target:
                self.send_body(302, b"", headers={"Location": f"{target}/landing"})
            elif self.path == "/same":
                self.send_body(302, b"", headers={"Location": "/ok"})
            else:
                self.send_body(200, b"document body")
    return Handler


def test_token_header_is_dropped_on_a_cross_origin_redirect(crawl_ws, loopback) -> None:
    other = loopback(_recorder(), seen=[])
    source = loopback(_recorder(other.url), seen=[])
    crawl_ws.write([{"name": "tok", "kind": "watch", "allow_private": True, "retry_max": 0,
                     "urls": [f"{source.url}/same", f"{source.url}/away"],
                     "token_env": "LS_TEST_TOKEN", "token_header": "X-Api-Key",
                     "token_format": "{token}",
                     "headers": {"X-Session": "sess-1", "X-Case": "42"}}])
    r = crawl_ws.crawl("tok", env={"LS_TEST_TOKEN": TOKEN})
    assert r.run is not None and r.run["outcome"] == "ok", r.output[-3000:]
    own = {path: h for path, h in source.httpd.seen}
    assert own["/same"]["X-Api-Key"] == TOKEN and own["/ok"]["X-Api-Key"] == TOKEN
    assert own["/away"]["X-Session"] == "sess-1"
    ((path, landed),) = other.httpd.seen
    assert path == "/landing"
    assert "X-Api-Key" not in landed and "X-Session" not in landed, landed
    assert "Authorization" not in landed and landed.get("X-Case") == "42"
    assert TOKEN not in r.output
