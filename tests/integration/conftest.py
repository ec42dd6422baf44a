"""A real worker process (`flask worker`) on a queue of the test's own, beside an app that enqueues to
it. CI's PostgreSQL pass uses Redis for the queue (as production does); the SQLite pass, and any run
without Redis, the embedded SQLite queue."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from app.extensions import db
from tests.conftest import CHECKOUT, make_app


class Worker:
    def __init__(self, env: dict, log_path):
        self.env, self.log_path, self.process = env, log_path, None

    def start(self, *args: str) -> Worker:
        self.log = open(self.log_path, "a")
        self.process = subprocess.Popen([sys.executable, "-m", "flask", "worker", *args], cwd=CHECKOUT,
                                        env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def stop(self, sig=signal.SIGINT, timeout: float = 15) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """As a crash (or the OOM killer) ends it: no handler runs."""
        self.process.kill()
        self.process.wait(timeout=15)

    def output(self) -> str:
        return self.log_path.read_text()


@pytest.fixture
def queue_settings(tmp_path, is_postgres) -> dict:
    """The queue, and the storage the app and the worker share (the local backend is one folder)."""
    redis_url = os.environ.get("TEST_REDIS_URL", "").strip()
    prefix = f"waule-test-{uuid.uuid4().hex[:12]}"
    storage = {"STORAGE_DIR": str(tmp_path / "storage")}
    if redis_url and is_postgres:
        yield {"JOBS_QUEUE": "redis", "REDIS_URL": redis_url, "JOBS_PREFIX": prefix, **storage}
        import redis
        connection = redis.Redis.from_url(redis_url)
        for key in connection.scan_iter(f"*{prefix}*"):
            connection.delete(key)
        connection.close()
    else:
        yield {"JOBS_QUEUE": "sqlite", "JOBS_SQLITE_PATH": str(tmp_path / "jobs.db"), "JOBS_PREFIX": prefix, **storage}


@pytest.fixture
def queued_app(app, test_env, tmp_path, queue_settings):
    """An app on the test's database whose jobs go to the real queue (the `app` fixture's run at once)."""
    queued = make_app({**test_env, **queue_settings}, tmp_path / "queued-instance")
    with queued.app_context():
        yield queued
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def worker(test_env, tmp_path, queue_settings):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("WAULE", "DATABASE", "REDIS"))}
    env.update({**test_env, **queue_settings, "FLASK_APP": "wsgi", "WAULE_INSTANCE_PATH": str(tmp_path / "worker"),
                "PYTHONUNBUFFERED": "1"})
    running = Worker(env, tmp_path / "worker.log")
    yield running
    if running.process is not None and running.process.poll() is None:
        running.kill()


def wait_for(condition, seconds: float = 60, every: float = 0.2):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    return condition()


@pytest.fixture
def queued_live_server(queued_app):
    """The queued app served on a real port: requests enqueue to the real queue a worker consumes."""
    import logging
    import threading

    from werkzeug.serving import make_server
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, queued_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)
