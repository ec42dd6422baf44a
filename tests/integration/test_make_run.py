"""`make run`, as a newcomer runs it: it starts the platform on its embedded defaults, and Ctrl-C stops
every process it started and ends cleanly. Run in a temporary instance folder and on free ports, so
the checkout's own data is never touched."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest
import requests

from tests.conftest import CHECKOUT
from tests.sandbox.conftest import free_port


@pytest.fixture
def make_run(tmp_path):
    if shutil.which("make") is None or not (CHECKOUT / ".venv" / "bin" / "gunicorn").exists():
        pytest.skip("needs make and the project's .venv")
    web, sandbox = free_port(), free_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("WAULE", "WAULEAPI", "SANDBOX", "DATABASE", "REDIS", "TEST_"))}
    env.update(WAULE_INSTANCE_PATH=str(tmp_path / "instance"), WAULE_BIND=f"127.0.0.1:{web}", WEB_CONCURRENCY="1",
               SANDBOX_PORT=str(sandbox))
    log = open(tmp_path / "make-run.log", "w+")
    # A session of its own, as a terminal gives a foreground job: Ctrl-C signals the whole group.
    process = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=CHECKOUT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    yield process, f"http://127.0.0.1:{web}", f"http://127.0.0.1:{sandbox}", log
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _wait_until_up(url: str, process, log, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    log.seek(0)
    pytest.fail(f"`make run` did not come up:\n{log.read()[-3000:]}")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ctrl_c_stops_make_run_and_everything_it_started(make_run, tmp_path):
    process, web, sandbox, log = make_run
    _wait_until_up(f"{web}/healthz", process, log)
    _wait_until_up(f"{sandbox}/health", process, log)
    assert (tmp_path / "instance" / "demo-credentials.txt").exists()

    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
    process.wait(timeout=30)
    log.seek(0)
    output = log.read()
    assert "Segmentation fault" not in output, output[-2000:]
    deadline = time.monotonic() + 10
    while _group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _group_alive(process.pid), "a process `make run` started outlived Ctrl-C"
