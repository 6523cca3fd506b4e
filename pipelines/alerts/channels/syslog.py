"""Syslog for a SIEM: RFC 5424 messages, with the alert's facts as structured
data, over UDP (one datagram each), TCP, or TLS (RFC 5425, port 6514, the
server's certificate verified; optional client certificate). On TCP and TLS a
message is framed by octet counting ("LEN MSG", RFC 6587 3.4.1 and RFC 5425)
or, with ``framing = "non-transparent"``, terminated by a newline (RFC 6587
3.4.2; line breaks inside a message become spaces so it stays one record).

The SD-ID uses enterprise number 32473, the one RFC 5612 reserves for
documentation; SIEM parsers key on the ``leaksentry@32473`` name.
"""

from __future__ import annotations

import socket
import ssl
from datetime import UTC, datetime

from leaksentry.config.alerts import SyslogChannel
from pipelines.alerts import render
from pipelines.alerts.channels.base import ChannelError, Outgoing

SD_ID = "leaksentry@32473"
#: alert severity -> syslog severity (2 crit, 3 err, 4 warning, 5 notice, 6 info)
_LEVEL = {"critical": 2, "high": 3, "medium": 4, "low": 5}


def _sd_value(v: object) -> str:
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _header_field(v: str, limit: int) -> str:
    v = "".join(c for c in v if 33 <= ord(c) <= 126)[:limit]
    return v or "-"


def format_message(config: SyslogChannel, message: Outgoing, now: datetime | None = None,
                   hostname: str | None = None) -> bytes:
    p = message.payload
    level = 6 if message.kind in ("test", "recovery") else _LEVEL.get(message.severity, 5)
    if message.low_priority:
        level = max(level, 5)  # notice at most: a re-sighting or digest never pages
    pri = config.facility * 8 + level
    stamp = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="milliseconds")
    stamp = stamp.replace("+00:00", "Z")
    host = _header_field(hostname or socket.gethostname(), 255)
    params = {"id": message.idempotency_key, "alert": message.alert_id, "type": message.kind,
              "severity": message.severity}
    for key in ("source", "sha256", "matched_records", "url", "thread_id", "count"):
        if p.get(key) is not None:
            params[key] = p[key]
    if p.get("kinds"):
        params["kinds"] = ",".join(p["kinds"])
    if p.get("exposed_categories"):
        params["exposed"] = ",".join(p["exposed_categories"])
    sd = "[" + SD_ID + "".join(f' {k}="{_sd_value(v)}"' for k, v in params.items()) + "]"
    msg = render.subject(p)
    line = (f"<{pri}>1 {stamp} {host} {_header_field(config.app_name, 48)} - "
            f"{_header_field(message.kind.upper(), 32)} {sd} {msg}")
    return line.encode("utf-8")


def frame(config: SyslogChannel, data: bytes) -> bytes:
    """One message as it goes on a TCP/TLS stream (RFC 6587)."""
    if config.framing == "non-transparent":
        return data.replace(b"\r", b" ").replace(b"\n", b" ") + b"\n"
    return str(len(data)).encode() + b" " + data


def tls_context(config: SyslogChannel) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=config.ca_file)
    if config.client_cert:
        ctx.load_cert_chain(config.client_cert, config.client_key)
    return ctx


class SyslogSender:
    def __init__(self, config: SyslogChannel) -> None:
        self.name = config.name
        self.config = config
        self._tls: ssl.SSLContext | None = None

    def send(self, message: Outgoing) -> None:
        c = self.config
        data = format_message(c, message)
        where = f"channel {self.name!r}: syslog {c.protocol} {c.host}:{c.effective_port}"
        try:
            if c.protocol == "udp":
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.settimeout(c.timeout)
                    s.sendto(data, (c.host, c.effective_port))
                return
            with socket.create_connection((c.host, c.effective_port), timeout=c.timeout) as s:
                if c.protocol == "tls":
                    if self._tls is None:
                        try:
                            self._tls = tls_context(c)
                        except (OSError, ssl.SSLError) as exc:  # a config problem
                            raise ChannelError(
                                f"{where}: cannot load ca_file/client_cert:"
                                f" {type(exc).__name__}: {exc}", retryable=False) from None
                    with self._tls.wrap_socket(s, server_hostname=c.host) as t:
                        t.sendall(frame(c, data))
                else:
                    s.sendall(frame(c, data))
        except ssl.SSLCertVerificationError as exc:
            raise ChannelError(f"{where}: TLS certificate not trusted ({exc.verify_message})",
                               retryable=False) from None
        except ssl.SSLError as exc:
            raise ChannelError(f"{where}: TLS: {exc.reason or exc}") from None
        except OSError as exc:
            raise ChannelError(f"{where}: {type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        pass
