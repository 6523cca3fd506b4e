"""Fixtures for the alert tests: real receivers (an HTTP server that verifies
signatures, aiosmtpd with STARTTLS/implicit TLS via trustme, UDP/TCP syslog
listeners), fictional findings with masked identifiers, and a fixed clock."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import socket
import socketserver
import ssl
import threading
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from leaksentry.config import Settings
from leaksentry.store import Store
from leaksentry.synth import Patient, patients, written_hkid
from pipelines.model import Finding, Match, ScanResult, StoredHit

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SECRET = "test-signing-secret"


# -- data ---------------------------------------------------------------------

def masked_hkid(canonical: str) -> str:
    return f"{canonical[:3]}****({canonical[-1]})"


def masked_hn(hn: str) -> str:
    return f"{hn[:4]}****{hn[-1]}"


@pytest.fixture(scope="session")
def people() -> list[Patient]:
    return list(patients(40, seed=606))


def make_finding(people: list[Patient], *, severity: str = "critical", source: str = "pastebin",
                 url: str = "https://paste.example/raw/abc", sha: str | None = None,
                 at: datetime = T0, filename: str | None = "export.csv",
                 unmasked: bool = False) -> Finding:
    """A hit on ``people``; ``unmasked`` simulates a buggy matcher that hands over the
    canonical identifiers as ``masked`` (the alert must mask them anyway)."""
    matches = []
    for p in people:
        matches.append(Match("hkid", p.hkid if unmasked else masked_hkid(p.hkid), p.ref, 1,
                             f"Sheet1!E{p.ref}", digest=hashlib.sha256(p.ref.encode()).hexdigest()))
        matches.append(Match("hn", p.hn if unmasked else masked_hn(p.hn), p.ref, 1,
                             f"Sheet1!F{p.ref}"))
    refs = [p.ref for p in people]
    result = ScanResult(severity=severity, risk_score=90, matched_records=len(refs),
                        record_refs=refs, record_level_refs=refs, matches=matches,
                        unmatched_valid={"hkid": 2}, parts=1,
                        snippets=["CHAN Ka Ming, A12****(3)"])
    return Finding(url=url, source=source,
                   sha256=sha or hashlib.sha256(url.encode()).hexdigest(), size=123_456,
                   fetched_at=at, result=result, filename=filename, content_type="text/csv")


def records_key(people: list[Patient]) -> str:
    return hashlib.sha256(",".join(sorted(p.ref for p in people)).encode()).hexdigest()


def stored(people: list[Patient], hit_id: int = 1, *, new: bool = True,
           at: datetime = T0) -> StoredHit:
    return StoredHit(hit_id=hit_id, new=new, first_seen=at, records_key=records_key(people))


def settings_with(tmp_path: Path, channels: list[dict[str, Any]] | None = None,
                  **alerts: Any) -> Settings:
    return Settings.model_validate({
        "state": {"dir": str(tmp_path / "state")},
        "alerts": {"channels": channels or [], "backoff_base": 10, "backoff_max": 600,
                   **alerts},
    })


@pytest.fixture
def rng() -> random.Random:
    return random.Random(6)


# -- plaintext search ------------------------------------------------------------

def flat(text: str) -> str:
    """Any written form of an identifier collapses to its canonical form here."""
    text = unicodedata.normalize("NFKC", unquote(text))
    return "".join(c for c in text if c.isalnum()).upper()


def written_forms(p: Patient) -> list[str]:
    rng = random.Random(p.ref)
    forms = {p.hkid, p.hkid.lower(), f"{p.hkid[:-1]}({p.hkid[-1]})", f"{p.hkid[:-1]} {p.hkid[-1]}",
             p.hn, p.hn.lower()}
    forms.update(written_hkid(p.hkid, rng) for _ in range(10))
    return sorted(forms)


def assert_no_plaintext(texts: list[str], planted: list[Patient]) -> None:
    """No planted identifier in any text, in any written form (raw or canonicalised)."""
    assert texts, "nothing captured: the search would prove nothing"
    for t in texts:
        f = flat(t)
        for p in planted:
            for form in written_forms(p):
                assert form not in t, f"identifier of record {p.ref} found as written"
            assert p.hkid not in f, f"HKID of record {p.ref} found (canonicalised)"
            assert p.hn not in f, f"HN of record {p.ref} found (canonicalised)"


# -- HTTP receiver ------------------------------------------------------------------

@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    verified: bool | None
    duplicate: bool

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP server that verifies X-LeakSentry signatures, rejects stale
    timestamps and de-duplicates on Idempotency-Key, like a careful receiver."""

    secret: str | None = SECRET
    statuses: list[int] = field(default_factory=list)  # answers to the next requests
    default_status: int = 200
    retry_after: str | None = None  # sent with 429/503 answers
    hang: threading.Event | None = None  # when set up, the first request waits on it
    requests: list[Received] = field(default_factory=list)
    processed: list[str] = field(default_factory=list)  # idempotency keys acted upon
    arrived: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None
    thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def verify(self, headers: dict[str, str], body: bytes) -> bool:
        stamp = headers.get("x-leaksentry-timestamp", "")
        sig = headers.get("x-leaksentry-signature", "")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > 300:
            return False
        mac = hmac.new(self.secret.encode(), stamp.encode() + b"." + body, hashlib.sha256)
        return hmac.compare_digest(sig, "sha256=" + mac.hexdigest())

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        if self.hang is not None and not self.requests:
            self.requests.append(Received(path, headers, body, 0, None, False))
            self.arrived.set()
            self.hang.wait(30)
            return 500
        verified = self.verify(headers, body) if self.secret else None
        key = headers.get("idempotency-key", "")
        duplicate = key in self.processed
        status = self.statuses.pop(0) if self.statuses else self.default_status
        if verified is False:
            status = 401
        if 200 <= status < 300 and not duplicate:
            self.processed.append(key)
        self.requests.append(Received(path, headers, body, status, verified, duplicate))
        self.arrived.set()
        return status


def _handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = receiver.handle(self.path, headers, body)
            self.send_response(status)
            if status in (429, 503) and receiver.retry_after:
                self.send_header("Retry-After", receiver.retry_after)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def start_receiver(receiver: Receiver, *, listen: bool = True) -> Receiver:
    """Bind 127.0.0.1:0; with ``listen`` False the port is bound but refuses
    connections (the receiver is "down") until :func:`bring_up`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(receiver),
                                 bind_and_activate=False)
    server.daemon_threads = True
    server.server_bind()
    receiver.server = server
    if listen:
        bring_up(receiver)
    return receiver


def bring_up(receiver: Receiver) -> None:
    assert receiver.server is not None
    receiver.server.server_activate()
    server = receiver.server
    receiver.thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05),
                                       daemon=True)
    receiver.thread.start()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for r in made:
        if r.hang is not None:
            r.hang.set()
        if r.server is not None:
            if r.thread is not None:
                r.server.shutdown()
            r.server.server_close()


@pytest.fixture
def receiver(receivers: list[Receiver]) -> Receiver:
    r = start_receiver(Receiver())
    receivers.append(r)
    return r


# -- SMTP ----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Mailbox:
    messages: list[bytes] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0
    ca_file: str = ""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


class _Auth:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str,
                 data: Any) -> AuthResult:
        if isinstance(data, LoginPassword) and data.login == b"soc" and \
                data.password == b"smtp-pass":
            self.box.logins.append(data.login.decode())
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


@pytest.fixture(scope="session")
def tls_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, str]:
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, str(path)


def _server_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return ctx


@pytest.fixture
def smtp_starttls(tls_ca: tuple[trustme.CA, str]) -> Iterator[Mailbox]:
    """aiosmtpd requiring STARTTLS (self-signed CA from trustme) and AUTH."""
    ca, ca_file = tls_ca
    box = Mailbox(port=free_port(), ca_file=ca_file)
    ctl = Controller(box, hostname="127.0.0.1", port=box.port,
                     tls_context=_server_context(ca), require_starttls=True,
                     auth_required=True, auth_require_tls=True, authenticator=_Auth(box))
    ctl.start()
    yield box
    ctl.stop()


@pytest.fixture
def smtp_implicit_tls(tls_ca: tuple[trustme.CA, str]) -> Iterator[Mailbox]:
    """aiosmtpd behind implicit TLS (SMTPS), no auth."""
    ca, ca_file = tls_ca
    box = Mailbox(port=free_port(), ca_file=ca_file)
    ctl = Controller(box, hostname="127.0.0.1", port=box.port,
                     ssl_context=_server_context(ca), server_hostname="127.0.0.1")
    ctl.start()
    yield box
    ctl.stop()


# -- syslog ----------------------------------------------------------------------------

@dataclass
class SyslogSink:
    port: int
    protocol: str
    messages: list[bytes] = field(default_factory=list)
    got: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def syslog_udp() -> Iterator[SyslogSink]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    sink = SyslogSink(sock.getsockname()[1], "udp")
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                data, _ = sock.recvfrom(65535)
            except TimeoutError:
                continue
            sink.messages.append(data)
            sink.got.set()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield sink
    stop.set()
    t.join(2)
    sock.close()


@dataclass
class StreamSink(SyslogSink):
    framing: str = "octet-counting"
    tls: ssl.SSLContext | None = None
    peer_certs: list[dict] = field(default_factory=list)  # client certificates seen
    errors: list[str] = field(default_factory=list)  # handshakes refused


def _stream_sink(framing: str = "octet-counting", tls: ssl.SSLContext | None = None
                 ) -> tuple[StreamSink, socketserver.ThreadingTCPServer]:
    """A syslog collector on a TCP stream: RFC 6587 octet counting ("LEN SP MSG") or
    non-transparent framing (one message per LF-terminated line), optionally inside
    TLS (RFC 5425) with the server context given."""
    sink = StreamSink(0, "tls" if tls else "tcp", framing=framing, tls=tls)

    class Handler(socketserver.StreamRequestHandler):
        def setup(self) -> None:
            if tls is not None:
                try:
                    self.request = tls.wrap_socket(self.request, server_side=True)
                except (ssl.SSLError, OSError) as exc:
                    sink.errors.append(type(exc).__name__)
                    sink.got.set()
                    raise
                if cert := self.request.getpeercert():
                    sink.peer_certs.append(cert)
            super().setup()

        def handle(self) -> None:
            while True:
                if framing == "non-transparent":
                    line = self.rfile.readline()
                    if not line:
                        return
                    assert line.endswith(b"\n")
                    sink.messages.append(line[:-1])
                else:
                    head = b""
                    while (c := self.rfile.read(1)) not in (b" ", b""):
                        head += c
                    if not head:
                        return
                    sink.messages.append(self.rfile.read(int(head)))
                sink.got.set()

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    sink.port = server.server_address[1]
    threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05),
                     daemon=True).start()
    return sink, server


@pytest.fixture
def stream_sinks() -> Iterator[Any]:
    """``stream_sinks(framing, tls)`` starts a collector; all are stopped afterwards."""
    servers: list[socketserver.ThreadingTCPServer] = []

    def make(framing: str = "octet-counting", tls: ssl.SSLContext | None = None) -> StreamSink:
        sink, server = _stream_sink(framing, tls)
        servers.append(server)
        return sink

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def syslog_tcp(stream_sinks: Any) -> StreamSink:
    return stream_sinks()


@pytest.fixture
def syslog_tcp_lines(stream_sinks: Any) -> StreamSink:
    """Plain TCP with newline framing (RFC 6587 non-transparent)."""
    return stream_sinks("non-transparent")


@pytest.fixture
def syslog_tls(stream_sinks: Any, tls_ca: tuple[trustme.CA, str]) -> StreamSink:
    """RFC 5425: TLS with octet counting, certificate for 127.0.0.1 from the trustme CA."""
    return stream_sinks(tls=_server_context(tls_ca[0]))


@pytest.fixture
def syslog_mtls(stream_sinks: Any, tls_ca: tuple[trustme.CA, str]) -> StreamSink:
    """RFC 5425 with client authentication: the client's certificate must come from
    the trustme CA."""
    ctx = _server_context(tls_ca[0])
    ctx.verify_mode = ssl.CERT_REQUIRED
    tls_ca[0].configure_trust(ctx)
    return stream_sinks(tls=ctx)


def every_channel(receivers: list[Receiver], smtp: Mailbox, udp: SyslogSink,
                  stream: SyslogSink) -> tuple[Receiver, Receiver, list[dict[str, Any]]]:
    """One channel of every type: a webhook receiver, a chat receiver (Slack and Teams
    on two paths), mail through ``smtp`` (user "soc"), syslog over UDP and over the
    ``stream`` sink (TCP, or TLS trusting the test CA). Returns (hook, chat, channels)."""
    hook = start_receiver(Receiver())
    chat = start_receiver(Receiver(secret=None))
    receivers += [hook, chat]
    siem = {"name": f"siem-{stream.protocol}", "type": "syslog", "port": stream.port,
            "protocol": stream.protocol}
    if stream.protocol == "tls":
        siem["ca_file"] = smtp.ca_file
    return hook, chat, [
        {"name": "hook", "type": "webhook", "url": hook.url, "secret": SECRET},
        {"name": "slack", "type": "slack", "url": chat.url + "/slack"},
        {"name": "teams", "type": "teams", "url": chat.url + "/teams"},
        {"name": "mail", "type": "email", "host": "127.0.0.1", "port": smtp.port,
         "username": "soc", "to": ["soc@hospital.example"], "ca_file": smtp.ca_file},
        {"name": "siem-udp", "type": "syslog", "port": udp.port},
        siem,
    ]


@pytest.fixture
def store(tmp_path: Path, store_url: str | Path) -> Iterator[Store]:
    """The state store, on SQLite and on PostgreSQL (``store_url``)."""
    from fixtures_postgres import open_store

    s = open_store(store_url, tmp_path / "state")
    yield s
    s.close()


def alert_key(store: Store, alert_id: int, channel: str) -> str:
    """The idempotency key the worker uses for an alert of this state file."""
    from leaksentry.store import outbox

    alert = outbox.get_alert(store.conn, alert_id)
    assert alert is not None
    return outbox.delivery_key(alert, channel)


@pytest.fixture
def kit() -> Any:
    """The helpers above, for test modules (importlib mode cannot import a conftest)."""
    import types

    return types.SimpleNamespace(
        T0=T0, SECRET=SECRET, make_finding=make_finding, stored=stored,
        records_key=records_key, settings_with=settings_with, masked_hkid=masked_hkid,
        assert_no_plaintext=assert_no_plaintext, written_forms=written_forms, flat=flat,
        Receiver=Receiver, start_receiver=start_receiver, bring_up=bring_up,
        free_port=free_port, alert_key=alert_key, every_channel=every_channel,
    )
