"""A faithful local simulator of GitHub's public gists API.

Follows https://docs.github.com/en/rest/gists/gists#list-public-gists,
https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api,
https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api and
https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api
(conditional requests):

* ``GET /gists/public?per_page=N&page=P`` — a JSON array of gists, newest first:
  ``id, node_id, url, html_url, files{name: {filename, type, language, raw_url, size}},
  public, created_at, updated_at, description, comments, owner, truncated``.
* ``Link: <...page=2>; rel="next", <...>; rel="last"`` for pagination.
* A strong ``ETag`` per page body; ``If-None-Match`` with it gives ``304 Not Modified``,
  which does not count against the rate limit.
* ``X-RateLimit-Limit/Remaining/Used/Reset/Resource`` on every response; 60 requests an
  hour without a token, 5000 with ``Authorization: Bearer``; past the limit ``403`` with
  ``{"message": "API rate limit exceeded ..."}`` and ``X-RateLimit-Remaining: 0``.
  ``secondary_retry_after`` makes the next request a secondary-limit ``429`` with
  ``Retry-After``.
* ``raw_url`` points at a different host name (``localhost`` here, like
  gist.githubusercontent.com) and includes the revision, which changes on edit.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

from servers.loopback import LoopbackServer, QuietHandler


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Gist:
    id: str
    files: dict[str, str]  # filename -> content
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    rev: int = 1

    def edit(self, filename: str, content: str) -> None:
        self.files[filename] = content
        self.rev += 1
        self.updated = max(time.time(), self.updated + 1)


class GistsState:
    def __init__(self) -> None:
        self.gists: list[Gist] = []
        self.lock = threading.Lock()
        self.api = ""
        self.raw = ""
        self.limit_anon = 60
        self.limit_token = 5000
        self.token = "ghp_test_token_not_real"
        self.used = 0
        self.window = 3600.0  # seconds; the window starts at the first request
        self.reset_at: float | None = None  # when the rate-limit window restarts
        self.secondary_retry_after: int | None = None
        self.requests: list[dict[str, object]] = []  # path, auth, status, time
        self.hits: Counter[str] = Counter()

    def add(self, gid: str, files: dict[str, str]) -> Gist:
        g = Gist(gid, dict(files))
        with self.lock:
            self.gists.insert(0, g)
        return g

    def get(self, gid: str) -> Gist | None:
        return next((g for g in self.gists if g.id == gid), None)

    def gist_json(self, g: Gist) -> dict[str, object]:
        return {
            "url": f"{self.api}/gists/{g.id}", "id": g.id, "node_id": f"G_{g.id}",
            "html_url": f"{self.api}/html/{g.id}",
            "files": {name: {"filename": name, "type": "text/plain", "language": "Text",
                             "raw_url": f"{self.raw}/raw/{g.id}/{g.rev}/{name}",
                             "size": len(body.encode())}
                      for name, body in g.files.items()},
            "public": True, "created_at": _iso(g.created), "updated_at": _iso(g.updated),
            "description": "", "comments": 0, "user": None,
            "owner": {"login": "someone", "id": 1}, "truncated": False,
        }


class Handler(QuietHandler):
    def _limits(self, st: GistsState, authed: bool) -> dict[str, str]:
        limit = st.limit_token if authed else st.limit_anon
        return {"X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": str(max(0, limit - st.used)),
                "X-RateLimit-Used": str(st.used),
                "X-RateLimit-Reset": str(int((st.reset_at or time.time() + st.window) + 0.999)),
                "X-RateLimit-Resource": "core"}

    def do_GET(self) -> None:
        st: GistsState = self.server.state  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        q = parse_qs(parts.query)
        auth = self.headers.get("Authorization")
        authed = auth == f"Bearer {st.token}"
        rec = {"path": self.path, "auth": auth, "host": self.headers.get("Host"),
               "time": time.time()}
        with st.lock:
            st.requests.append(rec)
        if parts.path.startswith("/raw/"):
            _, _, gid, rev, name = parts.path.split("/", 4)
            st.hits[f"raw:{gid}/{name}"] += 1
            g = st.get(gid)
            if g is None or str(g.rev) != rev or name not in g.files:
                rec["status"] = 404
                return self.send_body(404, b"404: Not Found")
            rec["status"] = 200
            return self.send_body(200, g.files[name].encode())
        if parts.path != "/gists/public":
            rec["status"] = 404
            return self.send_body(404, b'{"message": "Not Found"}', "application/json")
        st.hits["list"] += 1
        if st.reset_at is None:
            st.reset_at = time.time() + st.window
        elif time.time() >= st.reset_at:
            st.used, st.reset_at = 0, time.time() + st.window
        if st.secondary_retry_after is not None:
            wait, st.secondary_retry_after = st.secondary_retry_after, None
            rec["status"] = 429
            body = json.dumps({"message": "You have exceeded a secondary rate limit."})
            return self.send_body(429, body.encode(), "application/json",
                                  {"Retry-After": str(wait), **self._limits(st, authed)})
        limit = st.limit_token if authed else st.limit_anon
        if st.used >= limit:
            rec["status"] = 403
            body = json.dumps({"message": "API rate limit exceeded for 127.0.0.1.",
                               "documentation_url": "https://docs.github.com/rest"})
            return self.send_body(403, body.encode(), "application/json",
                                  self._limits(st, authed))
        per_page = min(int(q.get("per_page", ["30"])[0]), 100)
        page = int(q.get("page", ["1"])[0])
        with st.lock:
            gists = list(st.gists)
        chunk = gists[(page - 1) * per_page: page * per_page]
        body = json.dumps([st.gist_json(g) for g in chunk]).encode()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": "public, max-age=60, s-maxage=60"}
        last = max(1, -(-len(gists) // per_page))
        links = []
        if page < last:
            links.append(f'<{st.api}/gists/public?per_page={per_page}&page={page + 1}>;'
                         ' rel="next"')
            links.append(f'<{st.api}/gists/public?per_page={per_page}&page={last}>; rel="last"')
        if links:
            headers["Link"] = ", ".join(links)
        if self.headers.get("If-None-Match") == etag:
            rec["status"] = 304
            self.send_response(304)
            for k, v in {**headers, **self._limits(st, authed)}.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        st.used += 1
        rec["status"] = 200
        return self.send_body(200, body, "application/json; charset=utf-8",
                              {**headers, **self._limits(st, authed)})


def start() -> tuple[LoopbackServer, GistsState]:
    state = GistsState()
    srv = LoopbackServer(Handler, state=state).start()
    state.api = srv.url
    state.raw = f"http://localhost:{srv.port}"
    return srv, state
