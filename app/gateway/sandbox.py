"""The in-process sandbox: test-mode keys reach it through a requests adapter, with no process or
port, when SANDBOX_URL is not set. Result URLs point at http://sandbox.local/, which the same adapter
serves (and the result fetcher allowlists)."""
from __future__ import annotations

import io
import os

import requests
from flask import current_app
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from werkzeug.test import Client

SANDBOX_HOST = "sandbox.local"
SANDBOX_BASE = f"http://{SANDBOX_HOST}"


class _StreamedBody:
    """The app's body as requests reads a socket's (`stream` and `read`), for a call made with
    `stream=True`: each piece reaches the caller as the app yields it."""

    def __init__(self, answer):
        self._answer = answer
        self._pieces = iter(answer.response)

    def stream(self, amt=None, decode_content=True):
        for piece in self._pieces:
            if piece:
                yield piece

    def read(self, amt=None, decode_content=True):
        return b"".join(self.stream())

    def close(self):
        self._answer.close()


class WSGIAdapter(BaseAdapter):
    """Sends a requests call straight into a WSGI app (no socket)."""

    def __init__(self, wsgi_app):
        super().__init__()
        self._client = Client(wsgi_app)

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        split = requests.utils.urlparse(request.url)
        answer = self._client.open(path=split.path, query_string=split.query, method=request.method,
                                   headers=dict(request.headers), data=request.body or b"", buffered=not stream)
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers = CaseInsensitiveDict(answer.headers)
        response.raw = _StreamedBody(answer) if stream else io.BytesIO(answer.get_data())
        response.url = request.url
        response.request = request
        response.reason = answer.status.split(" ", 1)[-1]
        return response

    def close(self):
        pass


def is_mounted() -> bool:
    return "waule.sandbox_adapter" in current_app.extensions


def mount(session: requests.Session) -> None:
    """Let http://sandbox.local/ on this session reach the in-process sandbox app."""
    adapter = current_app.extensions.get("waule.sandbox_adapter")
    if adapter is not None:
        session.mount(f"{SANDBOX_BASE}/", adapter)


def fetch_session() -> requests.Session | None:
    """A session without credentials that can download the in-process sandbox's result files."""
    adapter = current_app.extensions.get("waule.sandbox_adapter")
    if adapter is None:
        return None
    session = current_app.extensions.get("waule.sandbox_fetch_session")
    if session is None:
        session = requests.Session()
        session.trust_env = False
        session.mount(f"{SANDBOX_BASE}/", adapter)
        current_app.extensions["waule.sandbox_fetch_session"] = session
    return session


def init_app(app) -> None:
    if app.config.get("SANDBOX_URL"):
        return  # a real sandbox process answers test-mode calls
    import sandbox
    files_dir = os.path.join(app.instance_path, "sandbox-files")
    sandbox_app = sandbox.create_app(secret=app.config["SANDBOX_SECRET"], files_dir=files_dir,
                                     public_url=SANDBOX_BASE, timeout_cap=app.config["SANDBOX_TIMEOUT_CAP"])
    app.extensions["waule.sandbox_adapter"] = WSGIAdapter(sandbox_app)
