"""Copying a result from the URL the gateway answered with, guarded against SSRF.

The gateway (or the vendor behind it) picks the URL, so it is untrusted: only http(s) and data: URIs,
no private, loopback, link-local or otherwise internal address unless the URL's origin (scheme, host
and port together) is allowlisted: every configured gateway's own origin and its files origin are,
automatically; FETCH_ALLOWLIST adds more. A host is never trusted as a whole, because another port on
it is another service. Redirects are followed by hand and each hop checked again; a size cap, a
timeout, and a content type that matches the kind. A result is kept in memory, or, in streaming mode
(`into`, for videos of gigabytes), written to a file as it arrives: memory stays flat. Each kind has its
size cap (FETCH_MAX_BYTES; FETCH_MAX_BYTES_VIDEO for videos) and time limit.

Addresses are checked twice: before the request, for a clear refusal before any connection, and again
by the connection itself, which connects only to an address it has just vetted — a host that resolves
to a public address for the check and a private one for the connection (DNS rebinding) is refused.
"""
from __future__ import annotations

import base64
import binascii
import contextvars
import ipaddress
import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

import requests
from flask import current_app
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.response import BaseHTTPResponse
from urllib3.util.connection import create_connection

from app.gateway import client as gateway
from app.gateway.client import UpstreamFailed
from app.gateway.sandbox import SANDBOX_BASE, SANDBOX_HOST
from config import url_origin

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 5
MAX_REDIRECTS = 3
CHUNK_BYTES = 64 * 1024
OCTET_STREAM = "application/octet-stream"

# kind -> (accepted major type, whether application/octet-stream is accepted too)
ACCEPTED_TYPES = {
    "image": ("image", False),
    "midjourney": ("image", False),
    "audio": ("audio", True),
    "video": ("video", True),
}
# Scriptable when opened from our origin, and never what a generator returns.
REFUSED_TYPES = {"image/svg+xml"}


class ResultRefused(UpstreamFailed):
    """The gateway pointed us at something we will not (or could not) download."""

    code = "upstream_bad_result"


@dataclass
class Fetched:
    data: bytes  # empty in streaming mode: the bytes went to `into`
    content_type: str
    url: str  # the final URL after redirects; for a data: URI only "data:<type>" (the payload is `data`)
    size: int = 0


def max_bytes(kind: str) -> tuple[int, str]:
    """The size cap of a kind's results, and the setting that sets it."""
    setting = "FETCH_MAX_BYTES_VIDEO" if kind == "video" else "FETCH_MAX_BYTES"
    return current_app.config[setting], setting


def _time_limit(kind: str) -> int:
    return current_app.config["FETCH_TIMEOUT_SECONDS_VIDEO" if kind == "video" else "FETCH_TIMEOUT_SECONDS"]


Origin = tuple[str, str, int]  # (scheme, host, port) as config.url_origin gives it: port filled in

# The allowlist of the fetch in progress, for the connection-level check (None outside a fetch: refuse).
_allowed_origins: contextvars.ContextVar[frozenset[Origin] | None] = contextvars.ContextVar(
    "fetch_allowed_origins", default=None)


def _normalize_host(host: str) -> str:
    return host.strip().lower().strip("[]").rstrip(".")


def allowed_origins() -> frozenset[Origin]:
    """Origins whose addresses are not checked: each active gateway's own and its files origin, the
    default gateway's, the sandbox's, and FETCH_ALLOWLIST (already origins: config spells them out)."""
    config = current_app.config
    urls = [SANDBOX_BASE, config.get("WAULEAPI_URL"), config.get("SANDBOX_URL"), *config.get("FETCH_ALLOWLIST", ())]
    for target in gateway.active_targets():
        urls += [target.base_url, target.files_origin]
    return frozenset(origin for origin in map(url_origin, filter(None, urls)) if origin is not None)


def configured_origins() -> frozenset[Origin]:
    """FETCH_ALLOWLIST alone: for URLs a tenant chooses (webhooks), which must never reach the gateways'
    own origins just because result downloads may."""
    urls = current_app.config.get("FETCH_ALLOWLIST", ())
    return frozenset(origin for origin in map(url_origin, urls) if origin is not None)


def is_internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Any address that is not plainly on the public internet."""
    if isinstance(address, ipaddress.IPv6Address):
        # ::ffff:127.0.0.1 reaches 127.0.0.1; judge the IPv4 address it carries.
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None and is_internal(mapped):
            return True
    return (address.is_private or address.is_loopback or address.is_link_local or address.is_multicast
            or address.is_reserved or address.is_unspecified or not address.is_global)


def vetted_addresses(origin: Origin, allowed: frozenset[Origin]) -> list[str]:
    """The addresses we may connect to for `origin`'s host: itself when the origin is allowlisted, else its
    resolved addresses, all of which must be public (one private answer among public ones is refused too)."""
    _scheme, host, port = origin
    if origin in allowed:
        return [host]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise ResultRefused("Refused to download the result: its host name does not resolve.") from None
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if is_internal(address):
            log.warning("refused result download from %s: it resolves to internal address %s", host, address)
            raise ResultRefused("Refused to download the result: its address is private or internal.")
        if str(address) not in addresses:
            addresses.append(str(address))
    if not addresses:
        raise ResultRefused("Refused to download the result: its host name does not resolve.")
    return addresses


class _VettedConnectionMixin:
    """Connects only to an address vetted at connect time, so a second DNS answer cannot differ."""

    origin_scheme = "http"

    def _new_conn(self) -> socket.socket:
        allowed = _allowed_origins.get()
        origin = (self.origin_scheme, _normalize_host(self._dns_host), self.port)
        addresses = vetted_addresses(origin, allowed if allowed is not None else frozenset())
        last_error: OSError | None = None
        for address in addresses:
            try:
                return create_connection((address, self.port), self.timeout, source_address=self.source_address,
                                         socket_options=self.socket_options)
            except socket.timeout as error:
                raise ConnectTimeoutError(self, f"Connection to {self.host} timed out.") from error
            except OSError as error:
                last_error = error
        raise NewConnectionError(self, f"Failed to establish a new connection: {last_error}")


class _VettedHTTPConnection(_VettedConnectionMixin, HTTPConnection):
    pass


class _VettedHTTPSConnection(_VettedConnectionMixin, HTTPSConnection):
    origin_scheme = "https"


class _VettedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _VettedHTTPConnection


class _VettedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _VettedHTTPSConnection


class _VettedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _VettedHTTPPool, "https": _VettedHTTPSPool}


def _new_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # an ambient proxy would connect on our behalf, past the address check
    session.headers["User-Agent"] = "waule-server"
    adapter = _VettedAdapter(pool_connections=16, pool_maxsize=64)  # shared by every worker thread
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


_session = _new_session()


def guarded_session() -> requests.Session:
    """A session of its own for another caller (webhook delivery) whose every connection goes only to
    an address vetted at connect time; send through it inside `allowing(...)`, and never follow a
    redirect with it (pass allow_redirects=False, or check each hop with check_url)."""
    return _new_session()


@contextmanager
def allowing(allowed: frozenset[Origin]) -> Iterator[None]:
    """Connections made in this block through a guarded session skip the address check only for
    `allowed` origins; outside any such block they are refused for every private address."""
    token = _allowed_origins.set(allowed)
    try:
        yield
    finally:
        _allowed_origins.reset(token)


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def _check_type(content_type: str, kind: str) -> None:
    major, octet_ok = ACCEPTED_TYPES[kind]
    if content_type in REFUSED_TYPES or not (content_type.startswith(f"{major}/")
                                             or (octet_ok and content_type == OCTET_STREAM)):
        shown = content_type or "none"
        raise ResultRefused(f"Refused to download the result: its content type ({shown}) is not {major}.")


_MAGIC = (  # (offset, bytes, type) for the octet-stream results audio and video gateways send
    (0, b"ID3", "audio/mpeg"), (0, b"\xff\xfb", "audio/mpeg"), (0, b"\xff\xf3", "audio/mpeg"),
    (0, b"OggS", "audio/ogg"), (0, b"fLaC", "audio/flac"), (0, b"\x1aE\xdf\xa3", "video/webm"),
)


def _sniffed(data: bytes, kind: str) -> str:
    """A better type than octet-stream from the first bytes, when they are plain."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    if data[4:8] == b"ftyp":
        return "audio/mp4" if kind == "audio" else "video/mp4"
    for offset, magic, content_type in _MAGIC:
        if data[offset:offset + len(magic)] == magic and content_type.startswith(ACCEPTED_TYPES[kind][0]):
            return content_type
    return OCTET_STREAM


def _finish(data: bytes, content_type: str, url: str, kind: str, *, head: bytes | None = None,
            size: int | None = None) -> Fetched:
    if content_type == OCTET_STREAM:
        content_type = _sniffed(data if head is None else head, kind)
    return Fetched(data, content_type, url, len(data) if size is None else size)


def fetch_result(url: str, *, kind: str, session: requests.Session | None = None,
                 into: BinaryIO | None = None) -> Fetched:
    """Download one result. `session` is the in-process sandbox's; it is used only for sandbox.local
    hops (it carries the gateway secret, which must never follow a redirect elsewhere). `into`: stream
    the body into this file as it arrives instead of keeping it (the answer's `data` is then empty)."""
    if kind not in ACCEPTED_TYPES:
        raise ValueError(f"no results are fetched for kind {kind!r}")
    if url[:5].lower() == "data:":
        fetched = _decode_data_uri(url, kind)
        if into is not None:
            into.write(fetched.data)
            fetched.data = b""
        return fetched
    allowed = allowed_origins()
    deadline = time.monotonic() + _time_limit(kind)
    token = _allowed_origins.set(allowed)
    try:
        for _hop in range(MAX_REDIRECTS + 1):
            host, port = _check_url(url, allowed)
            response = _request(url, host, port, session, deadline)
            if not response.is_redirect:
                return _read(response, url, host, kind, deadline, into)
            response.close()
            url = urljoin(url, response.headers["Location"])
        raise ResultRefused(f"Refused to download the result: more than {MAX_REDIRECTS} redirects.")
    finally:
        _allowed_origins.reset(token)


def check_url(url: str, allowed: frozenset[Origin]) -> tuple[str, int]:
    """An http(s) URL whose host's addresses are all public (or whose origin is in `allowed`): its host
    and port. Raises ResultRefused; callers other than the download say it in their own words."""
    return _check_url(url, allowed)


def _check_url(url: str, allowed: frozenset[Origin]) -> tuple[str, int]:
    try:
        split = urlsplit(url)
        port = split.port
    except ValueError:
        port = 0
    if port == 0:
        raise ResultRefused("Refused to download the result: its URL is malformed.")
    scheme = split.scheme.lower()
    if scheme not in ("http", "https"):
        raise ResultRefused("Refused to download the result: only http(s) URLs are fetched.")
    host = _normalize_host(split.hostname or "")
    if not host:
        raise ResultRefused("Refused to download the result: its URL has no host.")
    port = port or (443 if scheme == "https" else 80)
    vetted_addresses((scheme, host, port), allowed)
    return host, port


def _request(url: str, host: str, port: int, session: requests.Session | None,
             deadline: float) -> requests.Response:
    # Only what the sandbox adapter is mounted for; anything else goes through the vetted connections.
    in_sandbox = host == SANDBOX_HOST and url.lower().startswith(f"http://{SANDBOX_HOST}/")
    use = session if session is not None and in_sandbox else _session
    remaining = max(0.1, deadline - time.monotonic())
    try:
        return use.get(url, stream=True, allow_redirects=False,
                       timeout=(min(CONNECT_TIMEOUT_SECONDS, remaining), remaining))
    except requests.Timeout:
        log.warning("result download from %s:%s timed out", host, port)
        raise ResultRefused("The result could not be downloaded: the download timed out.") from None
    except requests.RequestException as error:
        log.warning("result download from %s:%s failed: %s", host, port, type(error).__name__)
        raise ResultRefused("The result could not be downloaded: the connection failed.") from None


def _read(response: requests.Response, url: str, host: str, kind: str, deadline: float,
          into: BinaryIO | None) -> Fetched:
    cap, setting = max_bytes(kind)
    head = b""
    try:
        if not 200 <= response.status_code < 300:
            log.warning("result download from %s answered HTTP %s", host, response.status_code)
            raise ResultRefused(f"The result could not be downloaded: HTTP {response.status_code}.")
        content_type = _media_type(response.headers.get("Content-Type"))
        _check_type(content_type, kind)
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap:
            raise _too_large(cap, setting)
        chunks, size = [], 0
        for chunk in _chunks(response):
            size += len(chunk)
            if size > cap:
                raise _too_large(cap, setting)
            if time.monotonic() > deadline:
                raise ResultRefused("The result could not be downloaded: the download timed out.")
            if into is None:
                chunks.append(chunk)
            else:
                if len(head) < 64:
                    head += chunk[:64 - len(head)]
                into.write(chunk)
    except (requests.Timeout, ReadTimeoutError, socket.timeout):
        log.warning("result download from %s timed out", host)
        raise ResultRefused("The result could not be downloaded: the download timed out.") from None
    except (requests.RequestException, Urllib3Error, OSError) as error:
        log.warning("result download from %s broke off: %s", host, type(error).__name__)
        raise ResultRefused("The result could not be downloaded: the connection broke off.") from None
    finally:
        response.close()
    if into is not None:
        return _finish(b"", content_type, url, kind, head=head, size=size)
    return _finish(b"".join(chunks), content_type, url, kind)


def _chunks(response: requests.Response):
    """The body as it arrives: read1 returns whatever is there, so a host that trickles bytes still
    meets the deadline between chunks (iter_content would wait for a full chunk)."""
    raw = response.raw
    if not isinstance(raw, BaseHTTPResponse):  # an adapter without a socket (the in-process sandbox)
        yield from response.iter_content(CHUNK_BYTES)
        return
    while chunk := raw.read1(CHUNK_BYTES, decode_content=True):
        yield chunk


def _too_large(cap: int, setting: str = "FETCH_MAX_BYTES") -> ResultRefused:
    limit = f"{cap / (1024 * 1024):g} MiB" if cap >= 1024 * 1024 else f"{cap} bytes"
    return ResultRefused(f"Refused to download the result: it is larger than {limit} ({setting}).")


def _decode_data_uri(url: str, kind: str) -> Fetched:
    header, comma, payload = url[5:].partition(",")
    parts = [part.strip().lower() for part in header.split(";")]
    if not comma or "base64" not in parts[1:]:
        raise ResultRefused("Refused to read the result: only base64 data: URIs are accepted.")
    content_type = parts[0]
    _check_type(content_type, kind)
    cap, setting = max_bytes(kind)
    if len(payload) // 4 * 3 > cap + 3:  # decoding would only confirm what the length already says
        raise _too_large(cap, setting)
    try:
        data = base64.b64decode(payload.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ResultRefused("Refused to read the result: its data: URI is not valid base64.") from None
    if len(data) > cap:
        raise _too_large(cap, setting)
    return _finish(data, content_type, f"data:{content_type}", kind)
