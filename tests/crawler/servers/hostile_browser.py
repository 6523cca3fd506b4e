"""A hostile page for a rendering crawler, and the "internal" service it aims at.

:class:`InternalService` stands for what the crawler host can reach and strangers
cannot (a metadata service, an admin port): a TCP listener and a UDP socket on one
loopback port that record every connection and datagram. It must receive nothing.

:class:`HostileSite` serves a listing whose script, before it writes the item links,
tries every way a page has to make the browser reach the internal service: an iframe, a
``fetch`` and a prefetch link behind redirects, a direct ``fetch`` by name, a WebSocket,
a dedicated worker opening its own WebSocket and fetch, a service worker fetching at
install, a download through a redirect, and WebRTC (STUN over UDP, TURN over TCP and
UDP). Its items: ``good`` (real content), ``nav`` (a navigation redirected to the
internal service) and ``dl`` (a download reached through a redirect).
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler
from typing import Self
from urllib.parse import urlsplit

from servers.loopback import SimulatedSite

GOOD_TEXT = "export batch 7 of the quarterly list, nothing internal here"

LISTING = """<!doctype html>
<html><head><meta charset="utf-8"><title>Recent pastes</title>
<link rel="prefetch" href="/r/prefetch"><link rel="prefetch" href="INTERNAL/prefetch-direct">
</head><body><h1>Recent</h1><div id="rows"></div>
<iframe id="f" src="/r/iframe"></iframe><iframe src="/download-frame"></iframe>
<script>
const later = (ms) => new Promise((ok) => setTimeout(ok, ms));
const settle = (p) => Promise.race([Promise.resolve(p).catch(() => null), later(4000)]);
function ws(url) {
  return new Promise((ok) => {
    try { const s = new WebSocket(url); s.onerror = s.onclose = s.onopen = () => ok(); }
    catch (e) { ok(); }
  });
}
function iframeLoaded() {
  return new Promise((ok) => { const f = document.getElementById('f');
    f.addEventListener('load', ok); f.addEventListener('error', ok); });
}
function worker() {
  return new Promise((ok) => { try { const w = new Worker('/worker.js');
    w.onmessage = w.onerror = () => ok(); } catch (e) { ok(); } });
}
function serviceWorker() {
  if (!navigator.serviceWorker) return Promise.resolve();
  return navigator.serviceWorker.register('/sw.js').then(
    () => Promise.race([navigator.serviceWorker.ready, later(3000)]));
}
function webrtc() {
  try {
    const pc = new RTCPeerConnection({iceServers: [
      {urls: 'stun:INTERNAL_HOSTPORT'},
      {urls: 'turn:INTERNAL_HOSTPORT?transport=udp', username: 'u', credential: 'p'},
      {urls: 'turn:INTERNAL_HOSTPORT?transport=tcp', username: 'u', credential: 'p'}]});
    pc.createDataChannel('x');
    return pc.createOffer().then((o) => pc.setLocalDescription(o)).then(() => later(2000));
  } catch (e) { return Promise.resolve(); }
}
Promise.all([settle(iframeLoaded()), settle(fetch('/r/fetch')),
             settle(fetch('NAMED/direct')), settle(ws('INTERNAL_WS/ws')),
             settle(worker()), settle(serviceWorker()), settle(webrtc())]).then(() => {
  document.getElementById('rows').innerHTML =
    '<a class="paste" href="/item/good">good</a> <a class="paste" href="/item/nav">nav</a>' +
    ' <a class="paste" href="/item/dl">dl</a>';
});
</script></body></html>"""

WORKER = """
try { new WebSocket('INTERNAL_WS/worker-ws'); } catch (e) {}
fetch('INTERNAL/worker-fetch').catch(() => null).then(() => postMessage('done'));
"""

SERVICE_WORKER = """
self.addEventListener('install', (e) => {
  e.waitUntil(fetch('INTERNAL/sw-install').catch(() => null));
});
self.addEventListener('fetch', (e) => {
  e.respondWith(fetch('INTERNAL/sw-fetch').catch(() => fetch(e.request)));
});
"""

#: a frame that clicks a download link redirected to the internal service (the refused
#: hop navigates this frame, not the listing)
DOWNLOAD_FRAME = """<!doctype html><html><body><a id="d" href="/r/download" download="x.csv">x</a>
<script>document.getElementById('d').click();</script></body></html>"""

ITEM = """<!doctype html><html><head><meta charset="utf-8"><title>Paste</title></head>
<body><pre>TEXT</pre></body></html>"""


class InternalService:
    """TCP and UDP on one loopback port; records everything that arrives."""

    def __init__(self) -> None:
        self.connections: Counter[str] = Counter()  # first line (or bytes) of each
        self.datagrams = 0
        service = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(2)
                try:
                    first = self.request.recv(200)
                except OSError:
                    first = b""
                line = first.split(b"\r\n", 1)[0].decode("latin-1") or "(no bytes)"
                service.connections[line] += 1
                if first.startswith(b"GET "):
                    body = b"INTERNAL-SECRET internal admin data\n"
                    self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                         b"Content-Length: %d\r\nConnection: close\r\n\r\n"
                                         % len(body) + body)

        self.tcp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.tcp.daemon_threads = True
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.udp.settimeout(0.5)
        self._stop = threading.Event()

    @property
    def port(self) -> int:
        return int(self.tcp.server_address[1])

    @property
    def received(self) -> int:
        return sum(self.connections.values()) + self.datagrams

    def _udp_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.udp.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.datagrams += 1

    def start(self) -> Self:
        threading.Thread(target=self.tcp.serve_forever, daemon=True).start()
        threading.Thread(target=self._udp_loop, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.tcp.shutdown()
        self.tcp.server_close()
        self.udp.close()


class HostileSite(SimulatedSite):
    """The source's own site (allowed) whose pages attack :class:`InternalService`."""

    def __init__(self, internal: InternalService) -> None:
        super().__init__()
        self.internal = internal

    def _fill(self, text: str) -> str:
        port = self.internal.port
        return (text.replace("INTERNAL_WS", f"ws://127.0.0.1:{port}")
                .replace("INTERNAL_HOSTPORT", f"127.0.0.1:{port}")
                .replace("INTERNAL", f"http://127.0.0.1:{port}")
                .replace("NAMED", f"http://localhost:{port}"))

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        path = urlsplit(h.path).path
        with self._lock:
            self.hits[path] += 1
        internal = f"http://127.0.0.1:{self.internal.port}"
        if path == "/list":
            self._send(h, 200, "text/html; charset=utf-8", self._fill(LISTING).encode())
        elif path == "/download-frame":
            self._send(h, 200, "text/html; charset=utf-8", DOWNLOAD_FRAME.encode())
        elif path == "/worker.js":
            self._send(h, 200, "text/javascript", self._fill(WORKER).encode())
        elif path == "/sw.js":
            self._send(h, 200, "text/javascript", self._fill(SERVICE_WORKER).encode())
        elif path.startswith("/r/"):
            self._redirect(h, f"{internal}/{path[3:]}")
        elif path == "/item/good":
            self._send(h, 200, "text/html; charset=utf-8",
                       ITEM.replace("TEXT", GOOD_TEXT).encode())
        elif path == "/item/nav":
            self._redirect(h, f"{internal}/nav")
        elif path == "/item/dl":
            self._redirect(h, f"{internal}/export.csv")
        else:
            self._send(h, 404, "text/plain", b"not here")

    @staticmethod
    def _redirect(h: BaseHTTPRequestHandler, location: str) -> None:
        h.send_response(302)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()
