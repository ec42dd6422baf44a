"""Copying results from the gateway's URLs: the SSRF guard, size cap, timeouts and content types.

A real HTTP server on 127.0.0.1 plays the result host; no traffic goes anywhere else. Python's audit
hook records every socket connect, so "refused before any connection" is observed, not assumed.
"""
from __future__ import annotations

import base64
import io
import socket
import sys
import threading
import time
import wave
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from werkzeug.wrappers import Request, Response

from app.gateway import registry
from app.gateway.fetch import ResultRefused, fetch_result
from app.gateway.sandbox import WSGIAdapter
from config import ConfigError, generate_secrets, load_config
from tests.conftest import TEST_ACTOR

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")

_connects: list | None = None


def _audit(event: str, args: tuple) -> None:
    if event == "socket.connect" and _connects is not None:
        _connects.append(args[1])


sys.addaudithook(_audit)  # hooks cannot be removed; it records only inside `connections()`


@contextmanager
def connections():
    """Every address a socket tried to connect to inside the block."""
    global _connects
    _connects = seen = []
    try:
        yield seen
    finally:
        _connects = None


def _wav_bytes() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 800)
    return buffer.getvalue()


WAV = _wav_bytes()


class ResultHost(BaseHTTPRequestHandler):
    """Routes: /image.png, /audio.bin (octet-stream WAV), /page.html, /vector.svg, /status/N,
    /redirect?to=URL, /chain/N (N redirects, then the image), /declared-big, /streamed-big,
    /slow (headers after 3 s), /drip (a byte every 0.3 s for 6 s), /exact (4096 bytes)."""

    protocol_version = "HTTP/1.0"

    def do_GET(self):
        split = urlsplit(self.path)
        self.server.seen.append({"path": split.path, "headers": dict(self.headers)})
        query = parse_qs(split.query)
        path = split.path
        if path == "/image.png":
            return self._send(200, "image/png", PNG)
        if path == "/audio.bin":
            return self._send(200, "application/octet-stream", WAV)
        if path == "/page.html":
            return self._send(200, "text/html; charset=utf-8", b"<html>hi</html>")
        if path == "/vector.svg":
            return self._send(200, "image/svg+xml", b"<svg xmlns='http://www.w3.org/2000/svg'/>")
        if path.startswith("/status/"):
            return self._send(int(path.rsplit("/", 1)[1]), "text/plain", b"no")
        if path == "/redirect":
            return self._redirect(query["to"][0])
        if path.startswith("/chain/"):
            left = int(path.rsplit("/", 1)[1])
            return self._redirect(f"/chain/{left - 1}" if left > 1 else "/image.png")
        if path == "/declared-big":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", "10000")
            self.end_headers()
            return self.wfile.write(b"\x00" * 10000)
        if path == "/streamed-big":  # no Content-Length: only counting the bytes finds out
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            for _ in range(64):
                self.wfile.write(b"\x00" * 16384)
            return None
        if path == "/exact":
            return self._send(200, "image/png", b"\x01" * 4096)
        if path == "/slow":
            time.sleep(3)
            return self._send(200, "image/png", PNG)
        if path == "/drip":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            for _ in range(20):
                self.wfile.write(b"\x00")
                self.wfile.flush()
                time.sleep(0.3)
            return None
        return self._send(404, "text/plain", b"missing")

    def _send(self, status: int, content_type: str, body: bytes):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the client hanging up on /slow or /streamed-big is the point of those routes


@contextmanager
def serving():
    server = _Server(("127.0.0.1", 0), ResultHost)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    server.base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def result_host():
    with serving() as server:
        yield server


@pytest.fixture
def other_host():
    """Another local service on the same host, another port: what an SSRF through an allowlisted host reaches."""
    with serving() as server:
        yield server


@pytest.fixture
def guarded(app):
    """No host allowlisted: a default gateway elsewhere, no sandbox URL, no FETCH_ALLOWLIST."""
    app.config.update(WAULEAPI_URL="https://gateway.example.com", SANDBOX_URL="", FETCH_ALLOWLIST=(),
                      FETCH_MAX_BYTES=200 * 1024 * 1024, FETCH_TIMEOUT_SECONDS=120)
    return app


ENV = {**generate_secrets(), "WAULE_ENV": "test", "DATABASE_URL": "sqlite://"}


def allowlist(app, tmp_path, value: str) -> None:
    """FETCH_ALLOWLIST as an operator writes it, parsed the way start-up parses it."""
    app.config["FETCH_ALLOWLIST"] = load_config({**ENV, "FETCH_ALLOWLIST": value}, tmp_path)["FETCH_ALLOWLIST"]


@pytest.fixture
def trusted(guarded, result_host, tmp_path):
    """The result host's origin allowlisted through FETCH_ALLOWLIST, as an operator would configure it."""
    allowlist(guarded, tmp_path, result_host.base)
    return guarded


def refused(url: str, kind: str = "image", **kwargs) -> ResultRefused:
    with pytest.raises(ResultRefused) as caught:
        fetch_result(url, kind=kind, **kwargs)
    error = caught.value
    assert (error.status, error.code, error.type) == (502, "upstream_bad_result", "api_error")
    return error


def test_an_image_from_an_allowlisted_host_is_copied(trusted, result_host):
    fetched = fetch_result(f"{result_host.base}/image.png", kind="image")
    assert fetched.data == PNG
    assert fetched.content_type == "image/png"
    assert fetched.url == f"{result_host.base}/image.png"


def test_midjourney_results_are_images_too(trusted, result_host):
    assert fetch_result(f"{result_host.base}/image.png", kind="midjourney").data == PNG


def test_octet_stream_audio_is_accepted_and_typed_from_its_bytes(trusted, result_host):
    fetched = fetch_result(f"{result_host.base}/audio.bin", kind="audio")
    assert fetched.data == WAV
    assert fetched.content_type == "audio/wav"


@pytest.mark.parametrize("template", [
    "{base}/image.png",                                  # 127.0.0.1 itself
    "http://localhost:{port}/image.png",                 # a name that resolves to loopback
    "http://[::1]:{port}/image.png",
    "http://[::ffff:127.0.0.1]:{port}/image.png",        # IPv4-mapped IPv6
    "http://2130706433:{port}/image.png",                # 127.0.0.1 spelled as one number
    "http://0.0.0.0:{port}/image.png",
    "http://10.0.0.1/image.png",
    "http://192.168.1.10/image.png",
    "http://169.254.169.254/latest/meta-data/",          # the cloud metadata service
    "http://[fe80::1]/image.png",
    "http://[fd00::1]/image.png",
    "http://224.0.0.1/image.png",
    "http://100.64.0.1/image.png",
])
def test_internal_addresses_are_refused_before_any_connection(guarded, result_host, template):
    url = template.format(base=result_host.base, port=result_host.server_address[1])
    with connections() as seen:
        error = refused(url)
    assert "private or internal" in error.message
    assert seen == []
    assert result_host.seen == []


def test_an_allowlisted_host_may_redirect_only_to_public_or_allowlisted_hosts(trusted, result_host):
    port = result_host.server_address[1]
    for target in ("http://10.0.0.1/secret", "http://169.254.169.254/latest/meta-data/",
                   f"http://localhost:{port}/image.png", "http://[::1]/x"):
        with connections() as seen:
            refused(f"{result_host.base}/redirect?to={target}")
        assert seen == [("127.0.0.1", port)], target  # only the first hop was ever connected to
    assert [hit["path"] for hit in result_host.seen] == ["/redirect"] * 4


def test_a_redirect_to_another_port_of_an_allowed_host_is_refused(guarded, result_host, other_host):
    registry.create_gateway(TEST_ACTOR, name="domestic", base_url=result_host.base, secret="gw-secret")
    with connections() as seen:
        error = refused(f"{result_host.base}/redirect?to={other_host.base}/image.png")
    assert "private or internal" in error.message
    assert seen == [("127.0.0.1", result_host.server_address[1])]
    assert other_host.seen == []


def test_a_redirect_to_another_scheme_is_refused(trusted, result_host):
    for target in ("file:///etc/passwd", "ftp://example.com/x", "data:image/png;base64,AAAA"):
        assert "only http(s)" in refused(f"{result_host.base}/redirect?to={target}").message


def test_up_to_three_redirects_are_followed(trusted, result_host):
    assert fetch_result(f"{result_host.base}/chain/3", kind="image").data == PNG
    assert "more than 3 redirects" in refused(f"{result_host.base}/chain/4").message


def test_a_host_that_changes_its_answer_between_check_and_connect_is_refused(guarded, result_host, monkeypatch):
    """DNS rebinding: public when checked, loopback when connected. The connection re-checks."""
    real_getaddrinfo = socket.getaddrinfo
    answers = []

    def rebinding(host, port, *args, **kwargs):
        if host != "rebind.test":
            return real_getaddrinfo(host, port, *args, **kwargs)
        answers.append(host)
        address = "93.184.216.34" if len(answers) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with connections() as seen:
        refused(f"http://rebind.test:{result_host.server_address[1]}/image.png")
    assert len(answers) == 2  # checked once before the request and once by the connection
    assert seen == [] and result_host.seen == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1:70/",
                                 "//127.0.0.1/x", "http:///nohost", "http://127.0.0.1:99999/x"])
def test_only_http_urls_with_a_host_are_fetched(trusted, url):
    with connections() as seen:
        refused(url)
    assert seen == []


def test_an_unresolvable_host_is_refused(guarded):
    assert "does not resolve" in refused("http://no-such-host.invalid/image.png").message


def test_an_active_gateways_origin_is_allowlisted_automatically(guarded, result_host):
    url = f"{result_host.base}/image.png"
    refused(url)
    gateway = registry.create_gateway(TEST_ACTOR, name="domestic", base_url=f"{result_host.base}/",
                                      secret="gw-secret", priority=10)  # as the dashboard does
    assert fetch_result(url, kind="image").data == PNG

    registry.update_gateway(gateway.id, TEST_ACTOR, {"is_active": False})
    refused(url)


def test_another_port_on_a_gateways_host_is_refused(guarded, result_host, other_host):
    """The gateway's host is not trusted as a whole: any other service on it stays out of reach."""
    registry.create_gateway(TEST_ACTOR, name="domestic", base_url=result_host.base, secret="gw-secret")
    with connections() as seen:
        error = refused(f"{other_host.base}/image.png")
    assert "private or internal" in error.message
    assert seen == [] and other_host.seen == []
    refused(f"https://127.0.0.1:{result_host.server_address[1]}/image.png")  # nor its port under another scheme


def test_a_gateways_files_origin_is_allowlisted_too(guarded, result_host, other_host):
    gateway = registry.create_gateway(TEST_ACTOR, name="domestic", base_url=result_host.base, secret="gw-secret",
                                      files_origin=f"{other_host.base}/")
    assert fetch_result(f"{other_host.base}/image.png", kind="image").data == PNG
    assert fetch_result(f"{result_host.base}/image.png", kind="image").data == PNG

    registry.update_gateway(gateway.id, TEST_ACTOR, {"files_origin": None})
    refused(f"{other_host.base}/image.png")


@pytest.mark.parametrize("setting", ["WAULEAPI_URL", "SANDBOX_URL"])
def test_the_default_gateway_and_sandbox_origins_are_allowlisted(guarded, result_host, other_host, setting):
    guarded.config[setting] = f"{result_host.base}/v1"
    assert fetch_result(f"{result_host.base}/image.png", kind="image").data == PNG
    refused(f"{other_host.base}/image.png")
    assert other_host.seen == []


def test_an_allowlisted_origin_admits_its_own_port_and_scheme_only(guarded, result_host, other_host, tmp_path):
    allowlist(guarded, tmp_path, f"http://127.0.0.1:{result_host.server_address[1]}")
    assert fetch_result(f"{result_host.base}/image.png", kind="image").data == PNG
    for url in (f"{other_host.base}/image.png", f"https://127.0.0.1:{result_host.server_address[1]}/image.png",
                "http://127.0.0.1/image.png"):
        with connections() as seen:
            assert "private or internal" in refused(url).message
        assert seen == [], url
    assert other_host.seen == []


def test_an_allowlisted_bare_host_admits_its_default_ports_only(guarded, result_host, tmp_path):
    allowlist(guarded, tmp_path, "127.0.0.1")
    with connections() as seen:
        assert "private or internal" in refused(f"{result_host.base}/image.png").message
    assert seen == [] and result_host.seen == []
    for url, port in (("http://127.0.0.1/image.png", 80), ("https://127.0.0.1/image.png", 443)):
        with connections() as seen:  # let through to connect (nothing listens on 80 or 443 here)
            assert "connection failed" in refused(url).message
        assert seen == [("127.0.0.1", port)]


def test_the_in_process_sandbox_session_is_used_only_for_sandbox_hops(trusted, result_host):
    """Its headers carry the gateway secret: they must not follow a redirect to another host."""

    @Request.application
    def sandbox(request):
        if request.path == "/files/a.png":
            return Response(PNG, content_type="image/png")
        return Response(status=302, headers={"Location": f"{result_host.base}/image.png"})

    session = requests.Session()
    session.headers["Authorization"] = "Bearer gateway-secret"
    session.mount("http://sandbox.local/", WSGIAdapter(sandbox))
    assert fetch_result("http://sandbox.local/files/a.png", kind="image", session=session).data == PNG
    assert fetch_result("http://sandbox.local/files/elsewhere", kind="image", session=session).data == PNG
    assert len(result_host.seen) == 1
    assert "Authorization" not in result_host.seen[0]["headers"]


def test_results_over_the_size_cap_are_refused(trusted, result_host):
    trusted.config["FETCH_MAX_BYTES"] = 4096
    assert len(fetch_result(f"{result_host.base}/exact", kind="image").data) == 4096
    assert "larger than 4096 bytes" in refused(f"{result_host.base}/declared-big").message
    started = time.monotonic()
    assert "larger than" in refused(f"{result_host.base}/streamed-big").message
    assert time.monotonic() - started < 2


def test_a_host_that_does_not_answer_in_time_is_refused(trusted, result_host):
    trusted.config["FETCH_TIMEOUT_SECONDS"] = 1
    started = time.monotonic()
    assert "timed out" in refused(f"{result_host.base}/slow").message
    assert time.monotonic() - started < 2.5


def test_a_download_that_trickles_past_the_timeout_is_refused(trusted, result_host):
    """Each byte arrives well within the read timeout; the whole download still has a deadline."""
    trusted.config["FETCH_TIMEOUT_SECONDS"] = 1
    started = time.monotonic()
    assert "timed out" in refused(f"{result_host.base}/drip").message
    assert time.monotonic() - started < 2.5


@pytest.mark.parametrize("path, kind, shown", [
    ("/page.html", "image", "text/html"),
    ("/vector.svg", "image", "image/svg+xml"),
    ("/audio.bin", "image", "application/octet-stream"),
    ("/image.png", "audio", "image/png"),
    ("/image.png", "video", "image/png"),
])
def test_a_content_type_that_does_not_match_the_kind_is_refused(trusted, result_host, path, kind, shown):
    assert f"content type ({shown})" in refused(f"{result_host.base}{path}", kind=kind).message


@pytest.mark.parametrize("status", [404, 403, 500, 503])
def test_a_failed_answer_is_refused_with_its_status(trusted, result_host, status):
    assert f"HTTP {status}" in refused(f"{result_host.base}/status/{status}").message


def test_a_host_that_refuses_connections_is_reported_clearly(guarded, tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    allowlist(guarded, tmp_path, f"http://127.0.0.1:{port}")
    assert "connection failed" in refused(f"http://127.0.0.1:{port}/image.png").message


def test_an_unknown_kind_is_a_programming_error(trusted):
    with pytest.raises(ValueError):
        fetch_result("https://cdn.example.com/a.txt", kind="chat")


def data_uri(content_type: str, data: bytes) -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


def test_data_uris_are_decoded(guarded):
    with connections() as seen:
        fetched = fetch_result(data_uri("image/png", PNG), kind="image")
    assert (fetched.data, fetched.content_type, fetched.url) == (PNG, "image/png", "data:image/png")
    assert seen == []
    audio = fetch_result(data_uri("application/octet-stream", WAV), kind="audio")
    assert (audio.data, audio.content_type) == (WAV, "audio/wav")


def test_data_uris_get_the_same_checks(guarded):
    guarded.config["FETCH_MAX_BYTES"] = 4096
    assert "content type (text/html)" in refused(data_uri("text/html", b"<b>x</b>")).message
    assert "larger than" in refused(data_uri("image/png", b"\x00" * 5000)).message
    assert "base64" in refused("data:image/png;base64,***not base64***").message
    assert "base64" in refused("data:image/png,rawbytes").message
    assert len(fetch_result(data_uri("image/png", b"\x00" * 4096), kind="image").data) == 4096


def test_fetch_settings_are_parsed_strictly(tmp_path):
    config = load_config({**ENV, "FETCH_ALLOWLIST": " CDN.example.com, [::1] ,http://10.0.0.5:8080,"
                                                    "HTTPS://Files.Example.com/, http://[fd00::1]"}, tmp_path)
    assert config["FETCH_ALLOWLIST"] == (
        "http://cdn.example.com:80", "https://cdn.example.com:443", "http://[::1]:80", "https://[::1]:443",
        "http://10.0.0.5:8080", "https://files.example.com:443", "http://[fd00::1]:80")
    assert load_config(ENV, tmp_path)["FETCH_ALLOWLIST"] == ()
    assert config["FETCH_MAX_BYTES"] == 200 * 1024 * 1024
    assert config["FETCH_TIMEOUT_SECONDS"] == 120
    assert config["STORAGE_DIR"] == str((tmp_path / "storage").resolve())
    for bad in ({"FETCH_MAX_BYTES": "lots"}, {"FETCH_TIMEOUT_SECONDS": "0"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            load_config({**ENV, **bad}, tmp_path)


@pytest.mark.parametrize("entry", [
    "cdn.example.com:8080",            # a port needs a scheme: http://cdn.example.com:8080
    "ftp://cdn.example.com",
    "https://cdn.example.com/files",   # an origin has no path
    "https://user:pw@cdn.example.com",
    "https://cdn.example.com?x=1",
    "https://cdn.example.com#top",
    "https://",
    "http://cdn.example.com:99999",
    "http://cdn.example.com:port",
    "cdn example.com",
    "//cdn.example.com",
])
def test_a_malformed_allowlist_entry_stops_start_up(tmp_path, entry):
    with pytest.raises(ConfigError, match="FETCH_ALLOWLIST") as caught:
        load_config({**ENV, "FETCH_ALLOWLIST": f"cdn.example.org,{entry}"}, tmp_path)
    assert repr(entry) in str(caught.value)


@pytest.mark.parametrize("setting", ["WAULEAPI_URL", "SANDBOX_URL"])
@pytest.mark.parametrize("url", ["http://", "http://:9000", "http://127.0.0.1:port", "http://127.0.0.1:99999"])
def test_a_gateway_url_without_a_usable_origin_stops_start_up(tmp_path, setting, url):
    with pytest.raises(ConfigError, match=setting):
        load_config({**ENV, setting: url}, tmp_path)
