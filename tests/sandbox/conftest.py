"""Fixtures for the sandbox gateway: its own app (never the platform's), a test client, a live process."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from sandbox import create_app

SECRET = "sandbox-test-secret"
AUTH = {"Authorization": f"Bearer {SECRET}"}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sandbox_app(tmp_path):
    return create_app(secret=SECRET, files_dir=tmp_path / "files", timeout_cap=0.5)


@pytest.fixture
def sandbox_client(sandbox_app):
    return sandbox_app.test_client()


def post(client, path: str, body: dict, headers: dict | None = None):
    return client.post(path, json=body, headers=AUTH if headers is None else headers)


def fetch(client, url: str):
    """GET a result URL through the test client; it must point at the sandbox's own /files."""
    prefix = "http://localhost/files/"
    assert url.startswith(prefix), url
    return client.get(url[len("http://localhost"):])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveSandbox:
    """`python -m sandbox` in a subprocess, waited for on /health and terminated afterwards."""

    def __init__(self, tmp_path: Path, env: dict, *args: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"sandbox-{self.port}.log"
        child_env = {k: v for k, v in os.environ.items() if k not in ("SANDBOX_SECRET", "WAULEAPI_SECRET")}
        child_env.update(env)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sandbox", "--host", "127.0.0.1", "--port", str(self.port),
                 "--files-dir", str(tmp_path / "live-files"), *args],
                cwd=ROOT, env=child_env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while True:
            try:
                if requests.get(f"{self.url}/health", timeout=1).ok:
                    return
            except requests.ConnectionError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sandbox did not start:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def live_sandbox(tmp_path_factory):
    server = LiveSandbox(tmp_path_factory.mktemp("live"), {"SANDBOX_SECRET": SECRET}, "--timeout-cap", "3")
    yield server
    server.stop()
