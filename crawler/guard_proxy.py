"""The guard proxy: Chromium's only way to the network (``render = true``).

Chromium fetches on its own — navigations, redirect hops, sub-resources, WebSockets,
workers, service workers, downloads, prefetches, WebRTC over TCP — past Scrapy's
downloader middlewares and resolver. So the crawl process runs this small asyncio proxy
on 127.0.0.1 (an ephemeral port, in the crawl's own event loop) and Chromium is launched
with :func:`chromium_args`: every request goes through it (loopback included), QUIC is
off and WebRTC may not send UDP around it.

For each request (HTTP forward or ``CONNECT``, which carries TLS and WebSockets) the
proxy resolves the target, applies the source's :class:`GuardPolicy` to every address
(:func:`crawler.middlewares.guard.checked_addresses`) and connects to an address it
checked — so DNS rebinding cannot slip in between check and connect. A refused
plain-HTTP request is answered ``403`` with :data:`REFUSED_HEADER` (the rendered
response is then discarded, :func:`crawler.playwright.blocked_response`); a refused
``CONNECT`` is answered ``403`` and the browser sees a failed tunnel.

With a configured source proxy (``http(s)://``, ``socks5://``, ``socks5h://``,
``socks4://``) this proxy chains to it, checking targets as the Scrapy guard does
(names the local resolver cannot resolve are left to the upstream proxy).
Bytes relayed from one upstream connection are capped (``max_bytes``,
the source's ``max_download_size`` plus headroom).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import logging
import ssl
import struct
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from crawler.addresses import DEFAULT_POLICY, GuardPolicy
from crawler.middlewares.guard import (
    BlockedAddress,
    Resolve,
    checked_addresses,
    system_resolve,
)

log = logging.getLogger(__name__)

#: response header of the proxy's own refusals (value: the one-line reason)
REFUSED_HEADER = "X-Leaksentry-Refused"
_HEAD_LIMIT = 64 * 1024
_HOP_HEADERS = (b"proxy-connection", b"proxy-authorization", b"connection", b"keep-alive")


def chromium_args(port: int) -> list[str]:
    """Launch flags that leave Chromium no way around the proxy on ``port``."""
    return [
        f"--proxy-server=http://127.0.0.1:{port}",
        "--proxy-bypass-list=<-loopback>",  # loopback goes through the proxy too
        # nothing to resolve: every name goes to the proxy (DNS prefetch included)
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        "--disable-quic",
        # WebRTC: TCP through the proxy only. Chromium 156 reads the pref switch
        # (--webrtc-ip-handling-policy); older builds the --force- form
        "--webrtc-ip-handling-policy=disable_non_proxied_udp",
        "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
        "--enforce-webrtc-ip-permission-check",
    ]


@dataclass
class GuardProxy:
    """An HTTP forward + CONNECT proxy applying ``policy`` to every target."""

    policy: GuardPolicy = DEFAULT_POLICY
    resolve: Resolve = system_resolve
    upstream: str | None = None  # the source's own proxy URL
    max_bytes: int = 0  # per upstream connection, 0: unlimited
    timeout: float = 30.0  # reading a request head, connecting
    refused: Counter[str] = field(default_factory=Counter)  # host:port -> refusals
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> GuardProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0,
                                                  limit=_HEAD_LIMIT)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- one client connection ---------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._handle(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                TimeoutError):
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.timeout)
        line, _, rest = head.partition(b"\r\n")
        method, target, _version = line.decode("latin-1").split(" ", 2)
        if method.upper() == "CONNECT":
            host, port = _split_authority(target, 443)
            forward = None
        else:
            parts = urlsplit(target)
            if parts.scheme != "http" or not parts.hostname:
                await _answer(writer, 403, f"{target[:200]}: refused: only http(s) is fetched")
                return
            host, port = parts.hostname, parts.port or 80
            path = parts.path or "/"
            origin_form = path + (f"?{parts.query}" if parts.query else "")
            forward = (method, target, origin_form, _strip_hop_headers(rest))
        label = f"{host}:{port}"
        try:
            up_reader, up_writer = await asyncio.wait_for(
                self._open(host, port, tunnel=forward is None), self.timeout)
        except BlockedAddress as exc:
            self.refused[label] += 1
            log.warning("browser request %s", str(exc)[:300])
            await _answer(writer, 403, str(exc))
            return
        except (OSError, TimeoutError, ValueError) as exc:
            await _answer(writer, 502, f"{label}: cannot connect: {type(exc).__name__}",
                          refused=False)
            return
        try:
            if forward is None:
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                method, absolute, origin_form, headers = forward
                request_target = absolute if self._upstream_http else origin_form
                up_writer.write(f"{method} {request_target} HTTP/1.1\r\n".encode("latin-1")
                                + headers + b"Connection: close\r\n"
                                + self._upstream_auth_header() + b"\r\n")
            await self._relay(reader, writer, up_reader, up_writer)
        finally:
            up_writer.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter) -> None:
        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                       cap: int) -> None:
            total = 0
            while data := await src.read(65536):
                total += len(data)
                if cap and total > cap:
                    log.warning("browser connection closed: more than %d bytes", cap)
                    return
                dst.write(data)
                await dst.drain()

        tasks = [asyncio.ensure_future(pump(reader, up_writer, 0)),
                 asyncio.ensure_future(pump(up_reader, writer, self.max_bytes))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- reaching the target -----------------------------------------------------
    @property
    def _upstream_http(self) -> bool:
        return bool(self.upstream) and urlsplit(self.upstream).scheme in ("http", "https")

    def _upstream_auth_header(self) -> bytes:
        if not self._upstream_http:
            return b""
        parts = urlsplit(self.upstream or "")
        if parts.username is None:
            return b""
        cred = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        return b"Proxy-Authorization: Basic " + base64.b64encode(cred) + b"\r\n"

    async def _open(self, host: str, port: int, *, tunnel: bool
                    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to ``host:port`` (directly, or a tunnel through the upstream
        proxy) after the guard allowed every address it resolves to."""
        addresses = await checked_addresses(host, port, policy=self.policy,
                                            resolve=self.resolve,
                                            proxied=bool(self.upstream))
        if not self.upstream:
            last: Exception = OSError(f"{host}: no address")
            for address in addresses:
                try:
                    return await asyncio.open_connection(address, port)
                except OSError as exc:
                    last = exc
            raise last
        up = urlsplit(self.upstream)
        scheme = up.scheme
        default_port = {"http": 80, "https": 443}.get(scheme, 1080)
        reader, writer = await asyncio.open_connection(
            up.hostname, up.port or default_port,
            ssl=ssl.create_default_context() if scheme == "https" else None)
        try:
            if scheme in ("http", "https"):
                if tunnel:
                    await _http_connect(reader, writer, host, port, self._upstream_auth_header())
            elif scheme in ("socks5", "socks5h"):
                target = host if scheme == "socks5h" or not addresses else addresses[0]
                await _socks5(reader, writer, target, port, up.username, up.password)
            elif scheme == "socks4":
                v4 = [a for a in addresses if ":" not in a]
                if not v4:
                    raise OSError(f"{host}: socks4 needs an IPv4 address")
                await _socks4(reader, writer, v4[0], port)
            else:
                raise ValueError(f"unsupported proxy scheme {scheme}")
        except BaseException:
            writer.close()
            raise
        return reader, writer


def _split_authority(target: str, default_port: int) -> tuple[str, int]:
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = target.rpartition(":") if ":" in target else (target, "", "")
    if port and not port.isdigit():
        raise ValueError(f"bad CONNECT target {target[:100]!r}")
    return host, int(port) if port else default_port


def _strip_hop_headers(block: bytes) -> bytes:
    """The request's header lines without hop-by-hop and proxy headers."""
    out = []
    for line in block.split(b"\r\n"):
        if not line:
            continue
        name = line.split(b":", 1)[0].strip().lower()
        if name not in _HOP_HEADERS:
            out.append(line + b"\r\n")
    return b"".join(out)


async def _answer(writer: asyncio.StreamWriter, status: int, message: str, *,
                  refused: bool = True) -> None:
    text = " ".join(message.split())[:500]
    body = (text + "\n").encode("utf-8", "replace")
    reason = {403: "Forbidden", 502: "Bad Gateway"}.get(status, "Error")
    head = [f"HTTP/1.1 {status} {reason}", "Content-Type: text/plain; charset=utf-8",
            f"Content-Length: {len(body)}", "Connection: close", "Cache-Control: no-store"]
    if refused:
        head.append(f"{REFUSED_HEADER}: " + text.encode("ascii", "replace").decode())
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1", "replace") + body)
    with contextlib.suppress(OSError):
        await writer.drain()


async def _http_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        host: str, port: int, auth: bytes) -> None:
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    writer.write(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n".encode()
                 + auth + b"\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    status = head.split(b" ", 2)[1] if head.count(b" ") >= 1 else b""
    if status != b"200":
        raise OSError(f"upstream proxy refused CONNECT ({status.decode('latin-1')})")


async def _socks5(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str,
                  port: int, user: str | None, password: str | None) -> None:
    methods = b"\x00\x02" if user is not None else b"\x00"
    writer.write(bytes([5, len(methods)]) + methods)
    _ver, method = await reader.readexactly(2)
    if method == 2 and user is not None:
        u, p = unquote(user).encode(), unquote(password or "").encode()
        writer.write(bytes([1, len(u)]) + u + bytes([len(p)]) + p)
        if (await reader.readexactly(2))[1] != 0:
            raise OSError("socks5 proxy refused the credentials")
    elif method != 0:
        raise OSError("socks5 proxy offers no usable authentication")
    try:
        ip = ipaddress.ip_address(host)
        addr = (b"\x01" if ip.version == 4 else b"\x04") + ip.packed
    except ValueError:
        name = host.encode("idna")
        addr = b"\x03" + bytes([len(name)]) + name
    writer.write(b"\x05\x01\x00" + addr + struct.pack("!H", port))
    _ver, rep, _rsv, atyp = await reader.readexactly(4)
    if rep != 0:
        raise OSError(f"socks5 proxy could not connect (reply {rep})")
    skip = {1: 4, 4: 16}.get(atyp)
    if skip is None:
        skip = (await reader.readexactly(1))[0]
    await reader.readexactly(skip + 2)


async def _socks4(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: str,
                  port: int) -> None:
    writer.write(b"\x04\x01" + struct.pack("!H", port)
                 + ipaddress.IPv4Address(address).packed + b"\x00")
    reply = await reader.readexactly(8)
    if reply[1] != 0x5A:
        raise OSError(f"socks4 proxy could not connect (reply {reply[1]})")
