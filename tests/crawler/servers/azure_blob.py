"""A faithful local simulator of Azure Blob Storage's anonymous List Blobs and Get Blob.

Why a simulator: Azure's own emulator (Azurite) is a Node.js service that is
not installed here, and moto does not speak the Blob REST API. This follows
Microsoft's REST reference:

- "List Blobs" (https://learn.microsoft.com/rest/api/storageservices/list-blobs):
  ``GET /{container}?restype=container&comp=list`` with ``prefix``, ``marker``
  and ``maxresults`` (<= 0 is 400; unset or > 5000 means 5000); the body is an
  ``EnumerationResults`` document (``ServiceEndpoint``/``ContainerName``
  attributes, ``Prefix``, ``Marker``, ``MaxResults``, ``Blobs/Blob`` with
  ``Name`` and ``Properties`` — ``Creation-Time``, ``Last-Modified`` (RFC 1123),
  ``Etag`` (``0x8D...``), ``Content-Length``, ``Content-Type``, ``BlobType`` —
  and ``NextMarker``, empty when the listing is complete, otherwise an opaque
  string passed back as ``marker``).
- "Listing Blob storage resources" (enumerating-blob-resources): names in
  lexicographic order; the marker is opaque to clients.
- "Get Blob": the bytes with ``ETag``, ``Last-Modified``, ``x-ms-blob-type``.
- Anonymous requests to a container without public access get 404
  ``ResourceNotFound`` (an ``Error`` XML body), as the service answers.
- "Create a service SAS": a container SAS (``sv``, ``sr=c``, ``sp``, ``sig`` query
  parameters) grants list and read on a private container; a wrong ``sig`` gets
  403 ``AuthenticationFailed``. The signature is not computed (no account key
  here): the simulator compares it with the one it issued.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from itertools import count
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit
from xml.sax.saxutils import escape

from servers.loopback import SimulatedSite

_etags = count(0x8DC0000_0000_0000)


@dataclass
class Blob:
    data: bytes
    content_type: str = "application/octet-stream"
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    modified: datetime = field(default_factory=lambda: datetime.now(UTC))
    etag: str = field(default_factory=lambda: f"0x{next(_etags):X}")


class AzureBlobService(SimulatedSite):
    """One storage account; ``containers[name] = {"public": bool, "blobs": {name: Blob}}``."""

    def __init__(self) -> None:
        super().__init__()
        self.containers: dict[str, dict] = {}

    # -- state ---------------------------------------------------------------
    def create_container(self, name: str, public: bool = True) -> None:
        self.containers[name] = {"public": public, "blobs": {}, "sig": None}

    def container_sas(self, name: str) -> str:
        """A container SAS query string (list + read) for a private container."""
        sig = base64.b64encode(f"sig-for-{name}".encode()).decode()
        self.containers[name]["sig"] = sig
        return urlencode({"sv": "2022-11-02", "sr": "c", "sp": "rl",
                          "se": "2030-01-01T00:00:00Z", "sig": sig})

    def put(self, container: str, name: str, data: bytes,
            content_type: str = "application/octet-stream") -> Blob:
        """Create or overwrite a blob: a new ETag and Last-Modified, as Put Blob does."""
        blobs = self.containers[container]["blobs"]
        old = blobs.get(name)
        blob = Blob(data, content_type, created=old.created if old else datetime.now(UTC))
        blobs[name] = blob
        return blob

    # -- lifecycle -----------------------------------------------------------
    # -- REST ----------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        q = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        segs = parts.path.lstrip("/").split("/", 1)
        cname = unquote(segs[0])
        cont = self.containers.get(cname)
        if cont is not None and "sig" in q:
            if q["sig"] != cont["sig"]:
                return self._error(h, 403, "AuthenticationFailed",
                                   "Server failed to authenticate the request.")
        elif cont is None or not cont["public"]:
            return self._error(h, 404, "ResourceNotFound",
                               "The specified resource does not exist.")
        if len(segs) == 1 or segs[1] == "":
            if q.get("restype") == "container" and q.get("comp") == "list":
                with self._lock:
                    self.hits["list"] += 1
                return self._list(h, cname, cont, q)
            return self._error(h, 400, "InvalidQueryParameterValue",
                               "Value for one of the query parameters specified is not valid.")
        name = unquote(segs[1])
        with self._lock:
            self.hits[f"get:{name}"] += 1
        blob = cont["blobs"].get(name)
        if blob is None:
            return self._error(h, 404, "BlobNotFound", "The specified blob does not exist.")
        h.send_response(200)
        h.send_header("Content-Type", blob.content_type)
        h.send_header("Content-Length", str(len(blob.data)))
        h.send_header("ETag", f'"{blob.etag}"')
        h.send_header("Last-Modified", format_datetime(blob.modified, usegmt=True))
        h.send_header("x-ms-blob-type", "BlockBlob")
        h.send_header("x-ms-version", "2021-08-06")
        h.end_headers()
        h.wfile.write(blob.data)

    def _list(self, h: BaseHTTPRequestHandler, cname: str, cont: dict, q: dict) -> None:
        try:
            maxresults = int(q.get("maxresults", "5000"))
        except ValueError:
            maxresults = 0
        if maxresults <= 0:
            return self._error(h, 400, "OutOfRangeQueryParameterValue",
                               "One of the query parameters specified in the request URI is "
                               "outside the permissible range.")
        maxresults = min(maxresults, 5000)
        prefix = q.get("prefix", "")
        marker = q.get("marker", "")
        start_after = base64.urlsafe_b64decode(marker.encode()).decode() if marker else ""
        names = sorted(n for n in cont["blobs"] if n.startswith(prefix) and n > start_after)
        page, rest = names[:maxresults], names[maxresults:]
        next_marker = base64.urlsafe_b64encode(page[-1].encode()).decode() if rest else ""
        out = ['<?xml version="1.0" encoding="utf-8"?>',
               f'<EnumerationResults ServiceEndpoint="{escape(self.url)}/" '
               f'ContainerName="{escape(cname)}">']
        out.append(f"<Prefix>{escape(prefix)}</Prefix>" if prefix else "")
        out.append(f"<Marker>{escape(marker)}</Marker>" if marker else "")
        out.append(f"<MaxResults>{maxresults}</MaxResults><Blobs>")
        for n in page:
            b = cont["blobs"][n]
            out.append(
                f"<Blob><Name>{escape(n)}</Name><Properties>"
                f"<Creation-Time>{format_datetime(b.created, usegmt=True)}</Creation-Time>"
                f"<Last-Modified>{format_datetime(b.modified, usegmt=True)}</Last-Modified>"
                f"<Etag>{b.etag}</Etag><Content-Length>{len(b.data)}</Content-Length>"
                f"<Content-Type>{escape(b.content_type)}</Content-Type><Content-Encoding />"
                f"<Content-Language /><Content-MD5 /><Cache-Control />"
                f"<BlobType>BlockBlob</BlobType><AccessTier>Hot</AccessTier>"
                f"<AccessTierInferred>true</AccessTierInferred><LeaseStatus>unlocked</LeaseStatus>"
                f"<LeaseState>available</LeaseState><ServerEncrypted>true</ServerEncrypted>"
                f"</Properties><OrMetadata /></Blob>")
        out.append("</Blobs>")
        out.append(f"<NextMarker>{escape(next_marker)}</NextMarker>" if next_marker
                   else "<NextMarker />")
        out.append("</EnumerationResults>")
        body = ("\ufeff" + "".join(out)).encode("utf-8")  # the service sends a UTF-8 BOM
        h.send_response(200)
        h.send_header("Content-Type", "application/xml")
        h.send_header("Content-Length", str(len(body)))
        h.send_header("x-ms-version", "2021-08-06")
        h.end_headers()
        h.wfile.write(body)

    @staticmethod
    def _error(h: BaseHTTPRequestHandler, status: int, code: str, msg: str) -> None:
        body = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
                f"<Message>{escape(msg)}</Message></Error>").encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/xml")
        h.send_header("Content-Length", str(len(body)))
        h.send_header("x-ms-error-code", code)
        h.end_headers()
        h.wfile.write(body)


def blob_url(base: str, container: str, name: str) -> str:
    return f"{base}/{quote(container)}/{quote(name)}"
