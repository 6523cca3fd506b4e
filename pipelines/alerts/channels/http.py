"""POSTing JSON with httpx: shared by the webhook, Slack and Teams channels."""

from __future__ import annotations

import ssl

import httpx

from leaksentry import __version__
from pipelines.alerts.channels.base import ChannelError, http_status_error


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
        raise ChannelError(f"channel {channel!r}: invalid URL", transient=False) from None
    except httpx.TimeoutException:
        raise ChannelError(f"channel {channel!r}: timed out") from None
    except httpx.TransportError as exc:
        # the message of a transport error does not include the URL
        raise ChannelError(f"channel {channel!r}: {type(exc).__name__}: {exc}") from None
    if not 200 <= resp.status_code < 300:
        raise http_status_error(channel, resp.status_code, resp.headers.get("Retry-After"))
    return resp
