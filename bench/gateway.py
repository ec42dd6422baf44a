"""What our server adds to a generation: the sandbox gateway called through Waule Server vs directly.

For image and chat requests, sequentially (one client) and with --clients concurrent clients (a thread
and a requests.Session each), the same body is sent to

  direct  the sandbox gateway process itself (POST /v1/…, Bearer secret),
  hop     bench/hop.py under the same gunicorn settings: a Flask app that only forwards to the sandbox,
          the floor of any Python server in between, and
  ours    Waule Server under gunicorn (gthread workers) on PostgreSQL, which authenticates the API key,
          prices, holds credits, calls that same sandbox, copies the image into its storage, settles
          and records usage (POST /api/v1/…).

It prints p50/p95 latency of each path, the added latency (ours − direct) at p50 and p95, the
throughput ratio (ours ÷ direct), and the same two figures for the hop. The script makes everything
it needs and removes it afterwards, even on failure or Ctrl-C: a waule_bench_gw_<random> database
(migrated with the project's own migrations), a sandbox process, two gunicorn processes (ours and
the hop), and a temporary directory for files and logs. At the end it checks `ledger.verify() == []`
and that every request left one COMPLETED generation.

    .venv/bin/python bench/gateway.py                       # about 1½ minutes on 2 CPUs
    .venv/bin/python bench/gateway.py --sequential 50 --per-client 5
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from app.billing import accounts as billing
from app.billing import ledger
from app.catalog import service as catalog
from app.extensions import db  # noqa: E402
from app.identity import tenants
from app.identity.audit import Actor  # noqa: E402
from app.models import Generation  # noqa: E402
from config import generate_secrets, load_config, normalize_database_url  # noqa: E402

BENCH = Actor(kind="system", name="bench")
SECRET = "bench-gateway-secret-0123456789"
IMAGE = "doubao-seedream-4-0-250828"
CHAT = "gemini-2.5-pro"
# The same request every time: the sandbox reuses the rendered PNG, so "direct" is its floor.
IMAGE_PROMPT = "a red fox in the snow, benchmark"
CHAT_MESSAGES = [{"role": "user", "content": "Summarize the benefits of a two-phase ledger in one sentence."}]


@dataclass
class Sample:
    latencies: list[float] = field(default_factory=list)  # seconds
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        """Milliseconds; nearest-rank."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))] * 1000 if ordered else 0.0

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


@dataclass
class Route:
    """One way to make a request: where it goes and how it authenticates."""

    name: str
    url: str
    headers: list[dict]  # client i sends headers[i % len(headers)]: one tenant's key each, for ours
    body: dict

    def send(self, session: requests.Session, client: int = 0) -> str | None:
        headers = self.headers[client % len(self.headers)]
        response = session.post(self.url, json=self.body, headers=headers, timeout=60)
        content = response.content  # read the whole answer, as a client would
        if response.status_code != 200:
            return f"HTTP {response.status_code}: {content[:200]!r}"
        return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, log_path: Path, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start; its log:\n{log_path.read_text(errors='replace')[-3000:]}")


def stop(process: subprocess.Popen | None, grace: float = 25) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)  # gunicorn: graceful shutdown of its workers
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- running -----------------------------------------------------------------------------------------

def run_sequential(path: Route, count: int) -> Sample:
    sample = Sample()
    with requests.Session() as session:
        started = time.perf_counter()
        for _ in range(count):
            began = time.perf_counter()
            error = path.send(session)
            sample.latencies.append(time.perf_counter() - began)
            if error:
                sample.errors.append(error)
        sample.seconds = time.perf_counter() - started
    return sample


def run_concurrent(path: Route, clients: int, per_client: int) -> Sample:
    sample = Sample()
    lock = threading.Lock()
    ready = threading.Barrier(clients + 1)

    def client(index: int):
        with requests.Session() as session:
            mine, errors = [], []
            ready.wait()
            for _ in range(per_client):
                began = time.perf_counter()
                error = path.send(session, index)
                mine.append(time.perf_counter() - began)
                if error:
                    errors.append(error)
        with lock:
            sample.latencies.extend(mine)
            sample.errors.extend(errors)

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    sample.seconds = time.perf_counter() - started
    return sample


def warm_up(path: Route, clients: int) -> None:
    """Open connections and fill every worker's caches (imports, compiled SQL) before measuring."""
    run_concurrent(path, clients, 2)
    run_sequential(path, 10)


# --- setting up ---------------------------------------------------------------------------------------

def create_database(server_url: str):
    server_url = normalize_database_url(server_url)
    name = f"waule_bench_gw_{uuid.uuid4().hex[:10]}"
    admin_engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        version = connection.execute(sa.text("SHOW server_version")).scalar()
    url = sa.engine.make_url(server_url).set(database=name).render_as_string(hide_password=False)

    def drop():
        with admin_engine.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin_engine.dispose()

    return url, version, drop


def server_env(database_url: str, sandbox_url: str, work: Path) -> dict:
    return {**generate_secrets(), "WAULE_ENV": "production", "DATABASE_URL": database_url,
            "WAULEAPI_URL": sandbox_url, "WAULEAPI_SECRET": SECRET, "STORAGE_DIR": str(work / "storage"),
            "WAULE_INSTANCE_PATH": str(work / "instance"), "REDIS_URL": ""}


def prepare(env: dict, work: Path, count: int) -> list[str]:
    """Migrate, seed the catalog and `count` funded tenants; returns their live API keys."""
    from flask_migrate import upgrade
    app = create_app({**load_config(env=env, instance_path=work / "instance"), "SKIP_ENV_CONFIG": True})
    with app.app_context():
        upgrade()
        catalog.seed_catalog(BENCH)
        keys = []
        for number in range(count):
            created = tenants.create_tenant(BENCH, name=f"Bench {number + 1}")
            billing.recharge(created.tenant.id, app.config["RECHARGE_MAX_CREDITS"], BENCH)
            keys.append(created.api_key_plaintext)
        db.session.remove()
        db.engine.dispose()
    return keys


def check(env: dict, work: Path, expected: int) -> list[str]:
    app = create_app({**load_config(env=env, instance_path=work / "instance"), "SKIP_ENV_CONFIG": True})
    with app.app_context():
        problems = ledger.verify()
        counts = dict(db.session.execute(sa.select(Generation.status, sa.func.count()).group_by(Generation.status)).all())
        if counts != {"COMPLETED": expected}:
            problems.append(f"generations by status {counts}, expected {{'COMPLETED': {expected}}}")
        db.session.remove()
        db.engine.dispose()
    return problems


# --- reporting ----------------------------------------------------------------------------------------

def report(results: dict, args) -> None:
    print()
    print("| request | clients | path | requests | p50 ms | p95 ms | req/s |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for (kind, mode), pair in results.items():
        clients = 1 if mode == "sequential" else args.clients
        for name in ("direct", "hop", "ours"):
            sample = pair[name]
            print(f"| {kind} | {clients} | {name} | {len(sample.latencies)} | {sample.percentile(.50):.1f} | "
                  f"{sample.percentile(.95):.1f} | {sample.per_second:.0f} |")
    print()
    print("| request | clients | added p50 ms | added p95 ms | throughput ours ÷ direct "
          "| floor: hop adds p50 / p95 ms | hop ÷ direct |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for (kind, mode), pair in results.items():
        clients = 1 if mode == "sequential" else args.clients
        direct, hop, ours = pair["direct"], pair["hop"], pair["ours"]
        print(f"| {kind} | {clients} | {ours.percentile(.50) - direct.percentile(.50):.1f} | "
              f"{ours.percentile(.95) - direct.percentile(.95):.1f} | {ours.per_second / direct.per_second:.2f} | "
              f"{hop.percentile(.50) - direct.percentile(.50):.1f} / {hop.percentile(.95) - direct.percentile(.95):.1f} | "
              f"{hop.per_second / direct.per_second:.2f} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL server; the benchmark makes and drops its own database there")
    parser.add_argument("--sequential", type=int, default=200, help="requests per path, one client")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--per-client", type=int, default=20, help="requests per concurrent client")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=16, help="threads per gunicorn worker")
    parser.add_argument("--tenants", type=int, default=32,
                        help="tenants the concurrent clients are spread over (client i is tenant i mod N); "
                             "1 puts every request on one tenant's ledger row")
    parser.add_argument("--kinds", default="image,chat", help="comma-separated: image, chat")
    parser.add_argument("--keep-logs", action="store_true", help="print where the logs are and keep them")
    args = parser.parse_args(argv)
    kinds = [kind.strip() for kind in args.kinds.split(",") if kind.strip()]

    work = Path(tempfile.mkdtemp(prefix="waule-bench-gw-"))
    sandbox = server = hop = None
    drop = None
    failures: list[str] = []
    try:
        database_url, pg_version, drop = create_database(args.database_url)
        sandbox_port, server_port = free_port(), free_port()
        sandbox_url, server_url = f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{server_port}"
        sandbox_log = work / "sandbox.log"
        with open(sandbox_log, "wb") as log:
            sandbox = subprocess.Popen(
                [sys.executable, "-m", "sandbox", "--host", "127.0.0.1", "--port", str(sandbox_port),
                 "--files-dir", str(work / "sandbox-files"), "--quiet"],
                cwd=ROOT, env={**os.environ, "SANDBOX_SECRET": SECRET}, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        wait_for(f"{sandbox_url}/health", sandbox, sandbox_log, "the sandbox")

        env = server_env(database_url, sandbox_url, work)
        api_keys = prepare(env, work, max(1, args.tenants))
        server_log = work / "gunicorn.log"
        with open(server_log, "wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "wsgi:app"],
                cwd=ROOT, env={**os.environ, **env, "WAULE_BIND": f"127.0.0.1:{server_port}",
                               "WEB_CONCURRENCY": str(args.workers), "WAULE_THREADS": str(args.threads)},
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(f"{server_url}/readyz", server, server_log, "gunicorn")
        hop_port = free_port()
        hop_url, hop_log = f"http://127.0.0.1:{hop_port}", work / "hop.log"
        with open(hop_log, "wb") as log:
            hop = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "bench.hop:app"],
                cwd=ROOT, env={**os.environ, "HOP_UPSTREAM": sandbox_url, "HOP_SECRET": SECRET,
                               "WAULE_BIND": f"127.0.0.1:{hop_port}", "WEB_CONCURRENCY": str(args.workers),
                               "WAULE_THREADS": str(args.threads)},
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(f"{hop_url}/healthz", hop, hop_log, "the hop")

        direct_auth = [{"Authorization": f"Bearer {SECRET}"}]
        ours_auth = [{"Authorization": f"Bearer {key}"} for key in api_keys]
        bodies = {"image": ({"model": IMAGE, "prompt": IMAGE_PROMPT, "size": "1:1"},
                            {"model": IMAGE, "prompt": IMAGE_PROMPT, "size": "1024x1024"},
                            "/images/generations"),
                  "chat": ({"model": CHAT, "messages": CHAT_MESSAGES, "max_tokens": 64},
                           {"model": CHAT, "messages": CHAT_MESSAGES, "max_tokens": 64},
                           "/chat/completions")}
        load_before = os.getloadavg()[0]
        print(f"machine: {os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}, "
              f"PostgreSQL {pg_version}; gunicorn {args.workers} gthread workers × {args.threads} threads; "
              f"{len(api_keys)} tenant(s); load average {load_before:.1f}", flush=True)
        results, completed = {}, 0
        for kind in kinds:
            direct_body, ours_body, route = bodies[kind]
            direct = Route("direct", f"{sandbox_url}/v1{route}", direct_auth, direct_body)
            bare = Route("hop", f"{hop_url}/v1{route}", direct_auth, direct_body)
            ours = Route("ours", f"{server_url}/api/v1{route}", ours_auth, ours_body)
            for path in (direct, bare, ours):
                warm_up(path, args.clients)
            completed += args.clients * 2 + 10
            for mode in ("sequential", "concurrent"):
                pair = {}
                for path in (direct, bare, ours):
                    if mode == "sequential":
                        pair[path.name] = run_sequential(path, args.sequential)
                    else:
                        pair[path.name] = run_concurrent(path, args.clients, args.per_client)
                    failures += [f"{kind} {mode} {path.name}: {error}" for error in pair[path.name].errors[:3]]
                    print(f"  {kind:5} {mode:10} {path.name:6} p50 {pair[path.name].percentile(.5):7.1f} ms  "
                          f"p95 {pair[path.name].percentile(.95):7.1f} ms  {pair[path.name].per_second:6.0f} req/s",
                          flush=True)
                completed += len(pair["ours"].latencies)
                results[(kind, mode)] = pair
        print(f"load average {load_before:.1f} → {os.getloadavg()[0]:.1f}")
        report(results, args)
        stop(server)
        server = None
        failures += check(env, work, completed)
    finally:
        stop(hop)
        stop(server)
        stop(sandbox, grace=5)
        if drop is not None:
            drop()
        if args.keep_logs:
            print(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("ledger.verify() == [] and every request left one COMPLETED generation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
