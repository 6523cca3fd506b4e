"""POSTing JSON with httpx: shared by the webhook, Slack and Teams channels."""

from __future__ import annotations

import logging
import ssl
from urllib.parse import urlsplit

import httpx

from leaksentry import __version__
from pipelines.alerts.channels.base import ChannelError, http_status_error


class _OriginOnly(logging.Filter):
    """httpx logs every request URL at INFO; Slack and Teams webhook URLs are bearer
    secrets, so only their origin may reach a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 2:
            args = list(record.args)
            for i, a in enumerate(args):
                if isinstance(a, httpx.URL | str) and "://" in str(a):
                    parts = urlsplit(str(a))
                    args[i] = f"{parts.scheme}://{parts.netloc}/..."
            record.args = tuple(args)
        return True


_httpx_log = logging.getLogger("httpx")
if not any(type(f).__name__ == "_OriginOnly" for f in _httpx_log.filters):
    _httpx_log.addFilter(_OriginOnly())


def client(timeout: float, ca_file: str | None = None) -> httpx.Client:
    verify: ssl.SSLContext | bool = True
    if ca_file:
        verify = ssl.create_default_context(cafile=ca_file)
    return httpx.Client(timeout=httpx.Timeout(timeout), verify=verify, follow_redirects=False,
                        headers={"User-Agent": f"leaksentry/{__version__}"})


def post(http: httpx.Client, channel: str, url: str, body: bytes,
         headers: dict[str, str]) -> httpx.Response:
    try:
        resp = http.post(url, content=body, headers={"Content-Type": "application/json",
                                                     **headers})
    except (httpx.InvalidURL, httpx.UnsupportedProtocol):
        raise ChannelError(f"channel {channel!r}: invalid URL", retryable=False) from None
    except httpx.TimeoutException:
        raise ChannelError(f"channel {channel!r}: timed out") from None
    except httpx.TransportError as exc:
        # the message of a transport error does not include the URL
        raise ChannelError(f"channel {channel!r}: {type(exc).__name__}: {exc}") from None
    if not 200 <= resp.status_code < 300:
        raise http_status_error(channel, resp.status_code, resp.headers.get("Retry-After"))
    return resp
