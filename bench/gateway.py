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
throughput ratio (ours ÷ direct), and the same two figures for the hop; the CPU each path's processes
spent per request (utime+stime from /proc, summed over the process group: gunicorn's master and
workers, or the sandbox for `direct`), and PostgreSQL's backends' CPU per request; then, on a third
server whose connections log every statement, the database round trips per warm-cache request; and a
table of the hot-path targets (issue 12), each marked met or missed. --profile adds py-spy's top
entries for our server under the concurrent load. The script makes everything
it needs and removes it afterwards, even on failure or Ctrl-C: a waule_bench_gw_<random> database
(migrated with the project's own migrations), a sandbox process, two gunicorn processes (ours and
the hop), and a temporary directory for files and logs. At the end it checks `ledger.verify() == []`
and that every request left one COMPLETED generation.

    .venv/bin/python bench/gateway.py                       # about 1½ minutes on 2 CPUs
    .venv/bin/python bench/gateway.py --sequential 50 --per-client 5
    .venv/bin/python bench/gateway.py --json run-a.json ; .venv/bin/python bench/gateway.py --json run-b.json
    .venv/bin/python bench/gateway.py --combine run-a.json run-b.json     # the tables with "a · b" cells
"""
from __future__ import annotations

import argparse
import json
import os
import re
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
from collections import Counter
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from app.billing import accounts as billing
from app.billing import ledger
from app.cli import migrations
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
    cpu: dict[str, float] = field(default_factory=dict)  # CPU ms spent during the run, by CpuMeter.delta

    def cpu_per_request(self, what: str) -> float | None:
        return self.cpu[what] / len(self.latencies) if what in self.cpu and self.latencies else None

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


def start_sandbox(work: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    url, log_path = f"http://127.0.0.1:{port}", work / "sandbox.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "sandbox", "--host", "127.0.0.1", "--port", str(port),
             "--files-dir", str(work / "sandbox-files"), "--quiet"],
            cwd=ROOT, env={**os.environ, "SANDBOX_SECRET": SECRET}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    wait_for(f"{url}/health", process, log_path, "the sandbox")
    return process, url


def start_gunicorn(app: str, env: dict, log_path: Path, ready: str, workers: int, threads: int,
                   ) -> tuple[subprocess.Popen, str]:
    """gunicorn with the project's settings, in a session of its own: its process group is what CpuMeter sums."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), app],
            cwd=ROOT, env={**os.environ, **env, "WAULE_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(workers),
                           "WAULE_THREADS": str(threads)},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_for(f"{url}{ready}", process, log_path, f"gunicorn {app}")
    return process, url


TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def stat(pid: int) -> tuple[str, list[str]] | None:
    """(command name, the fields after it) of /proc/<pid>/stat; None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()


def ticks(fields: list[str], children: bool = False) -> int:
    """utime + stime (all threads, exited ones included), and with `children` the reaped children's too."""
    return int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)


def processes() -> dict[int, tuple[str, int, int]]:
    """pid → (command name, process group, utime + stime in clock ticks)."""
    found = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (read := stat(int(entry.name))):
            found[int(entry.name)] = (read[0], int(read[1][2]), ticks(read[1]))
    return found


class CpuMeter:
    """CPU time spent during a run by named process groups and by PostgreSQL, from /proc.

    Groups: every process whose process group is the given one (gunicorn's master and workers, the
    sandbox, a peer's server and workers). Resolution is one clock tick (10 ms) per process, so a run
    should cost hundreds of ticks.

    PostgreSQL (a server on this machine): `pg` is the backends connected to the bench database, found
    by their process titles among the postmaster's children. The apps' pools open and close backends
    during a run (SQLAlchemy closes overflow connections as they come back), so a thread samples them
    every 20 ms and a backend that exits counts with its last sample: what it spent in its last 20 ms
    is lost. `pg_all` is exact and an upper bound: the postmaster's own time plus its children's, live
    ones from their stat and exited ones from the postmaster's cutime/cstime, so it adds the WAL writer,
    the checkpointer and any other database's work on the machine."""

    INTERVAL = 0.02

    def __init__(self, admin_url: str, database: str, groups: dict[str, int]):
        self.database, self.groups = database, groups
        engine = sa.create_engine(normalize_database_url(admin_url), isolation_level="AUTOCOMMIT",
                                  poolclass=sa.NullPool)
        with engine.connect() as connection:  # our backend's parent is the postmaster; read it while it lives
            read = stat(connection.execute(sa.text("SELECT pg_backend_pid()")).scalar())
        engine.dispose()
        self.postmaster = int(read[1][1]) if read and read[0] == "postgres" else None  # None: not on this machine
        # Backends are keyed by (pid, start time): pids wrap at 32768 here, and other suites churn connections.
        self.titles: dict[tuple[int, str], bool] = {}  # backend → serves the bench database
        self.last: dict[tuple[int, str], int] = {}
        self.stopping = threading.Event()
        self.sampler: threading.Thread | None = None

    def children(self) -> list[int]:
        try:
            listed = Path(f"/proc/{self.postmaster}/task/{self.postmaster}/children").read_text()
            return [int(pid) for pid in listed.split()]
        except OSError:
            return []

    def ours(self, backend: tuple[int, str]) -> bool:
        if backend not in self.titles:
            try:
                title = Path(f"/proc/{backend[0]}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                return False
            if not title.startswith("postgres: "):  # still the postmaster's title before its startup packet
                return False
            self.titles[backend] = f" {self.database} " in title
        return self.titles[backend]

    def sample_backends(self) -> dict[tuple[int, str], int]:
        found = {}
        for pid in self.children():
            if (read := stat(pid)) and self.ours(backend := (pid, read[1][19])):
                found[backend] = ticks(read[1])
        return found

    def snapshot(self) -> dict:
        with open("/proc/stat") as machine:
            user, nice, system, _, _, irq, softirq = (int(n) for n in machine.readline().split()[1:8])
        taken = {"groups": processes(), "pg": {}, "pg_all": None, "at": time.monotonic(),
                 "busy": user + nice + system + irq + softirq, "client": ticks(stat(os.getpid())[1])}
        if self.postmaster:
            taken["pg"] = self.sample_backends()
            read = stat(self.postmaster)
            taken["pg_all"] = ticks(read[1], children=True) + sum(
                ticks(child[1]) for pid in self.children() if (child := stat(pid)))
        return taken

    def start(self) -> dict:
        before = self.snapshot()
        self.last = dict(before["pg"])
        self.stopping.clear()
        if self.postmaster:
            self.sampler = threading.Thread(target=self._sample, daemon=True)
            self.sampler.start()
        return before

    def _sample(self) -> None:
        while not self.stopping.wait(self.INTERVAL):
            self.last.update(self.sample_backends())

    def finish(self, before: dict) -> dict[str, float]:
        self.stopping.set()
        if self.sampler:
            self.sampler.join()
        after = self.snapshot()
        then, now = before["groups"], after["groups"]
        spent_by = {name: sum(now[pid][2] - then.get(pid, ("", 0, 0))[2]
                              for pid, (_, group, _) in now.items() if group == pgid) * TICK_MS
                    for name, pgid in self.groups.items()}
        if self.postmaster:
            final = {**self.last, **after["pg"]}
            spent_by["pg"] = sum(spent - before["pg"].get(backend, 0) for backend, spent in final.items()) * TICK_MS
            spent_by["pg_all"] = (after["pg_all"] - before["pg_all"]) * TICK_MS
        # How busy the machine was with work other than this run's: all CPU time less our groups, the
        # bench database's backends and this client, as CPUs on average (2 = both CPUs all the time).
        ours = sum(spent_by[name] for name in self.groups) + spent_by.get("pg", 0) + \
            (after["client"] - before["client"]) * TICK_MS
        spent_by["others_cpus"] = max(0.0, (after["busy"] - before["busy"]) * TICK_MS - ours) / 1000 / \
            (after["at"] - before["at"])
        return spent_by

    def close(self) -> None:
        self.stopping.set()


# With Debian's log_line_prefix '%m [%p] %q%u@%d ': "… [pid] user@database LOG:  statement: …".
LOG_LINE = re.compile(r"(?:\[(\d+)\] )?(?:\S*@(\S*) )?LOG:  (?:statement|execute [^:]*): (.*)")


def postgres_log(engine) -> Path | None:
    """The server's log file: pg_current_logfile() with the logging collector, else Debian's stderr log."""
    with engine.connect() as connection:
        name = connection.execute(sa.text("SELECT pg_current_logfile()")).scalar()
        data = connection.execute(sa.text("SHOW data_directory")).scalar()
    if name:
        return Path(data) / name
    logs = sorted(Path("/var/log/postgresql").glob("*.log"), key=lambda path: path.stat().st_mtime)
    return logs[-1] if logs else None


class StatementLog:
    """Counts the statements a server's connections send, from PostgreSQL's log.

    The server under count connects with PGOPTIONS="-c log_statement=all" (its own connections only; the
    database's settings stay as they are), so every simple query and every extended-protocol execute is
    one `LOG:  statement:` / `LOG:  execute` line, BEGIN, COMMIT, ROLLBACK and pool pings included. Two
    marker statements from our own logging connection bracket the requests; the lines between them from
    the bench database's other backends are what the requests sent. A connection that issued LISTEN (a
    cache's invalidation listener) is not serving requests: its statements are reported apart."""

    OPTIONS = "-c log_statement=all"

    def __init__(self, database_url: str, database: str):
        self.database = database
        self.engine = sa.create_engine(normalize_database_url(database_url), isolation_level="AUTOCOMMIT",
                                       pool_size=1, connect_args={"options": self.OPTIONS})
        with self.engine.connect() as connection:
            self.own_pid = connection.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        self.path = postgres_log(self.engine)
        self.opened_at = self.path.stat().st_size if self.path else 0  # before the counted server connects

    def marker(self, text: str) -> None:
        with self.engine.connect() as connection:
            connection.execute(sa.text(f"SELECT 'waule-bench-{text}'"))

    def count(self, send, requests_sent: int) -> tuple[float, Counter, int]:
        """(statements per request, Counter of statement shapes, statements of LISTEN connections meanwhile)
        for `requests_sent` calls of send()."""
        if self.path is None:
            raise RuntimeError("PostgreSQL's log file was not found (no pg_current_logfile(), no /var/log/postgresql)")
        token = uuid.uuid4().hex[:12]
        self.marker(f"start-{token}")
        for _ in range(requests_sent):
            send()
        self.marker(f"end-{token}")
        time.sleep(0.2)
        with open(self.path, "rb") as log:
            log.seek(self.opened_at)
            lines = log.read().decode(errors="replace").splitlines()
        start = next((i for i, line in enumerate(lines) if f"waule-bench-start-{token}" in line), None)
        end = next((i for i, line in enumerate(lines) if f"waule-bench-end-{token}" in line), None)
        if start is None or end is None:
            raise RuntimeError(f"the marker statements did not appear in {self.path}")
        logged = []  # (line number, pid or None, statement) of the bench database's connections
        for number, line in enumerate(lines[:end]):
            match = LOG_LINE.search(line)
            if match and match[2] in (None, self.database) and not (match[1] and int(match[1]) == self.own_pid):
                logged.append((number, match[1], match[3]))
        # Listeners connect when the server starts, before the markers: hence reading from self.opened_at.
        listeners = {pid for _, pid, text in logged if pid and text.lstrip().upper().startswith("LISTEN")}
        between = [(pid, text) for number, pid, text in logged if number > start]
        statements = Counter(shorten_sql(text) for pid, text in between if pid not in listeners)
        if not statements:
            raise RuntimeError("no statement lines between the markers: PostgreSQL's log_line_prefix must "
                               "carry [%p] and user@database as Debian's does, or LOG_LINE be adapted")
        listened = sum(1 for pid, _ in between if pid in listeners)
        return sum(statements.values()) / requests_sent, statements, listened

    def close(self) -> None:
        self.engine.dispose()


def shorten_sql(text: str) -> str:
    """A statement's shape, for the list: literals and parameters dropped, cut to 110 characters."""
    if text.strip() == "SELECT 1":
        return "SELECT 1 (the pool's ping)"
    text = re.sub(r"'[^']*'", "'…'", text)
    text = re.sub(r"\b\d+(\.\d+)?\b", "N", text)
    return text if len(text) <= 110 else text[:109] + "…"


def profile(pid: int, load, seconds_hint: float, work: Path, name: str) -> Path | None:
    """py-spy's samples of a process group (master and workers) while load() runs; None without py-spy."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("  --profile needs py-spy: .venv/bin/pip install py-spy (a bench tool, not a requirement)")
        return None
    output = work / f"profile-{name}.txt"
    # --gil: only the thread holding the GIL is sampled, so the profile is where our Python spends CPU,
    # not where threads wait (for PostgreSQL, the sandbox, the next request).
    recorder = subprocess.Popen([spy, "record", "--pid", str(pid), "--subprocesses", "--gil", "--format", "raw",
                                 "--rate", "250", "--output", str(output), "--duration", str(int(seconds_hint) + 60)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # py-spy attaches to every worker before the load starts
        load()
    finally:
        recorder.send_signal(signal.SIGINT)  # py-spy writes what it has on Ctrl-C
        _, errors = recorder.communicate(timeout=60)
    if not output.exists():
        print(f"  py-spy wrote no profile: {errors[-500:]}")
        return None
    return output


def profile_top(path: Path, top: int) -> tuple[list, list, int, list]:
    """Top frames by own samples (the frame was running), the project's own functions (app/) by total
    samples (the frame was on the stack), and own samples summed by package (sqlalchemy, flask, app/…)."""
    own, total, packages, samples = Counter(), Counter(), Counter(), 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [short_frame(frame) for frame in stack.split(";")]
        frames = [frame for frame in frames if not frame.startswith("process ")]  # py-spy's per-process root
        if not frames:
            continue
        samples += int(count)
        own[frames[-1]] += int(count)
        packages[package_of(frames[-1])] += int(count)
        for frame in set(frames):
            if "(app/" in frame:
                total[frame] += int(count)
    return own.most_common(top), total.most_common(top), samples, packages.most_common(12)


def package_of(frame: str) -> str:
    """`sqlalchemy` for `f (sqlalchemy/orm/session.py)`, `app/generation` for our code, `json` for the stdlib's."""
    match = re.search(r"\(([^()]*)\)$", frame)
    parts = (match[1] if match else frame).split("/")
    if parts[0] == "app" and len(parts) > 2:
        return "/".join(parts[:2])
    return parts[0].removesuffix(".py")


def short_frame(frame: str) -> str:
    """`function (path/to/file.py:12)` with the path cut to the package: `function (sqlalchemy/orm/session.py)`."""
    match = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    if not match:
        return frame
    function, file = match[1], match[2]
    for anchor in ("site-packages/", "lib/python3.11/", str(ROOT) + "/"):
        if anchor in file:
            file = file.split(anchor, 1)[1]
            break
    return f"{function} ({file})"


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


def measured(meter: CpuMeter | None, run) -> Sample:
    before = meter.start() if meter else None
    sample = run()
    if meter:
        sample.cpu = meter.finish(before)
    return sample


def warm_up(path: Route, clients: int) -> None:
    """Open connections and fill every worker's caches (imports, compiled SQL) before measuring."""
    run_concurrent(path, clients, 2)
    run_sequential(path, 10)


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
            "WAULE_INSTANCE_PATH": str(work / "instance"), "REDIS_URL": "", "PUBLIC_BASE_URL": "http://127.0.0.1"}


def prepare(env: dict, work: Path, count: int) -> list[str]:
    """Migrate, seed the catalog and `count` funded tenants; returns their live API keys."""
    from flask_migrate import upgrade
    app = create_app({**load_config(env=env, instance_path=work / "instance"), "SKIP_ENV_CONFIG": True})
    migrations.bind(app)
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


def bodies() -> dict:
    """kind → (body for the sandbox and the hop, body for ours, route under /v1 and /api/v1)."""
    return {"image": ({"model": IMAGE, "prompt": IMAGE_PROMPT, "size": "1:1"},
                      {"model": IMAGE, "prompt": IMAGE_PROMPT, "size": "1024x1024"},
                      "/images/generations"),
            "chat": ({"model": CHAT, "messages": CHAT_MESSAGES, "max_tokens": 64},
                     {"model": CHAT, "messages": CHAT_MESSAGES, "max_tokens": 64},
                     "/chat/completions")}


# A run's figures are a plain dict (so --json can keep them and --combine can put runs side by side):
# {"machine", "load", "rows": [{kind, clients, path, requests, p50, p95, rps, cpu, cpu_sandbox, cpu_pg,
# cpu_pg_all}], "round_trips": {kind: per request}, "statements": {kind: [[shape, per request]]},
# "profile": {kind: {"own", "total", "samples"}}}.

OWN_GROUP = {"direct": "sandbox", "hop": "hop", "ours": "ours", "litellm": "litellm"}


def row_figures(kind: str, clients: int, name: str, sample: Sample) -> dict:
    return {"kind": kind, "clients": clients, "path": name, "requests": len(sample.latencies),
            "p50": sample.percentile(.50), "p95": sample.percentile(.95), "rps": sample.per_second,
            "cpu": sample.cpu_per_request(OWN_GROUP[name]), "cpu_sandbox": sample.cpu_per_request("sandbox"),
            "cpu_pg": sample.cpu_per_request("pg"), "cpu_pg_all": sample.cpu_per_request("pg_all"),
            "others_cpus": sample.cpu.get("others_cpus")}


def find(run: dict, kind: str, clients: int, path: str) -> dict | None:
    return next((row for row in run["rows"]
                 if (row["kind"], row["clients"], row["path"]) == (kind, clients, path)), None)


def cells(values, spec: str = ".1f") -> str:
    """One table cell for several runs: "a · b"; "–" where a run has no figure."""
    return " · ".join("–" if value is None else format(value, spec) for value in values)


def difference(a: dict | None, b: dict | None, key: str) -> float | None:
    return a[key] - b[key] if a and b else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def latency_tables(runs: list[dict], paths: list[str]) -> None:
    first = runs[0]
    keys = list(dict.fromkeys((row["kind"], row["clients"]) for row in first["rows"]))
    print("| request | clients | path | requests | p50 ms | p95 ms | req/s | CPU ms / request: "
          "server | sandbox | PG backends | all postgres processes | other work, CPUs |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kind, clients in keys:
        for path in paths:
            rows = [find(run, kind, clients, path) for run in runs]
            if not any(rows):
                continue

            def col(key, spec=".1f"):
                return cells([row.get(key) if row else None for row in rows], spec)
            print(f"| {kind} | {clients} | {path} | {col('requests', 'd')} | {col('p50')} | {col('p95')} | "
                  f"{col('rps', '.0f')} | {col('cpu', '.2f')} | {col('cpu_sandbox', '.2f')} | {col('cpu_pg', '.2f')} | "
                  f"{col('cpu_pg_all', '.2f')} | {col('others_cpus', '.2f')} |")
    print()
    others = [path for path in paths if path not in ("direct", "ours")]
    print("| request | clients | added p50 ms | added p95 ms | throughput ours ÷ direct | ours ÷ hop "
          + "".join(f"| {path} adds p50 / p95 ms | {path} ÷ direct " for path in others) + "|")
    print("|---|---:|---:|---:|---:|---:" + "|---:|---:" * len(others) + "|")
    for kind, clients in keys:
        direct = [find(run, kind, clients, "direct") for run in runs]
        ours = [find(run, kind, clients, "ours") for run in runs]
        hop = [find(run, kind, clients, "hop") for run in runs]
        line = (f"| {kind} | {clients} | {cells(map(difference, ours, direct, ['p50'] * len(runs)))} | "
                f"{cells(map(difference, ours, direct, ['p95'] * len(runs)))} | "
                f"{cells([ratio(o and o['rps'], d and d['rps']) for o, d in zip(ours, direct)], '.2f')} | "
                f"{cells([ratio(o and o['rps'], h and h['rps']) for o, h in zip(ours, hop)], '.2f')} ")
        for path in others:
            other = [find(run, kind, clients, path) for run in runs]
            line += (f"| {cells(map(difference, other, direct, ['p50'] * len(runs)))} / "
                     f"{cells(map(difference, other, direct, ['p95'] * len(runs)))} | "
                     f"{cells([ratio(o and o['rps'], d and d['rps']) for o, d in zip(other, direct)], '.2f')} ")
        print(line + "|")


def round_trip_tables(runs: list[dict]) -> None:
    kinds = list(dict.fromkeys(kind for run in runs for kind in run.get("round_trips", {})))
    if not kinds:
        return
    print()
    print("| request (API key, warm cache) | database round trips / request |")
    print("|---|---:|")
    for kind in kinds:
        print(f"| {kind} | {cells([run.get('round_trips', {}).get(kind) for run in runs], '.2f')} |")
    for label, run in shown(runs):
        for kind in kinds:
            statements = run.get("statements", {}).get(kind)
            if statements:
                print(f"\n{kind}: statements per request, from PostgreSQL's log{label}")
                for shape, per_request in statements:
                    print(f"  {per_request:5.2f} × {shape}")


def shown(runs: list[dict]) -> list[tuple[str, dict]]:
    """The runs whose statement lists and profiles are printed: the first and, side by side, the last."""
    return [("", runs[0])] if len(runs) == 1 else [(" (first run)", runs[0]), (" (last run)", runs[-1])]


def targets(run: dict, kinds: list[str], clients: int) -> list[tuple[str, float | None, bool | None]]:
    """The hot-path targets of issue 12: (target, this run's figure, met?); None where not measured."""
    def at_most(figure, limit):
        return None if figure is None else figure <= limit

    def at_least(figure, limit):
        return None if figure is None else figure >= limit

    chat_ours, chat_hop = find(run, "chat", clients, "ours"), find(run, "chat", clients, "hop")
    ours_cpu, hop_cpu = chat_ours and chat_ours["cpu"], chat_hop and chat_hop["cpu"]
    pg_cpu = chat_ours and chat_ours["cpu_pg"]
    added = {(kind, q): difference(find(run, kind, 1, "ours"), find(run, kind, 1, "direct"), q)
             for kind in kinds for q in ("p50", "p95")}
    trips = run.get("round_trips", {})
    found = []
    if "chat" in kinds:
        found += [
            (f"CPU per paid chat request, our processes ({clients} clients) ≤ 2.5 ms", ours_cpu,
             at_most(ours_cpu, 2.5)),
            ("… and ≤ 2× the hop's in the same run (ours ÷ hop)", ratio(ours_cpu, hop_cpu),
             at_most(ratio(ours_cpu, hop_cpu), 2.0)),
            (f"PostgreSQL backend CPU per chat request ({clients} clients) ≤ 1.0 ms", pg_cpu, at_most(pg_cpu, 1.0)),
            ("Round trips per chat request, API key, warm cache ≤ 2", trips.get("chat"), at_most(trips.get("chat"), 2)),
            ("Sequential added latency, chat, p50 ≤ 4 ms", added["chat", "p50"], at_most(added["chat", "p50"], 4)),
            ("Sequential added latency, chat, p95 ≤ 8 ms", added["chat", "p95"], at_most(added["chat", "p95"], 8)),
        ]
    if "image" in kinds:
        found.append(("Round trips per image request, API key, warm cache ≤ 3", trips.get("image"),
                      at_most(trips.get("image"), 3)))
    if "image" in kinds and "chat" in kinds:
        for q in ("p50", "p95"):
            image, chat = added["image", q], added["chat", q]
            extra = None if image is None or chat is None else image - chat
            found.append((f"Sequential added latency, image − chat, {q} ≤ 3 ms", extra, at_most(extra, 3)))
    for kind in kinds:
        ours, hop = find(run, kind, clients, "ours"), find(run, kind, clients, "hop")
        share = ratio(ours and ours["rps"], hop and hop["rps"])
        found.append((f"Throughput at {clients} clients, {kind}, ours ÷ hop ≥ 0.6", share, at_least(share, 0.6)))
    litellm = find(run, "chat", clients, "litellm")
    if litellm and chat_ours:
        ours_all = None if ours_cpu is None or pg_cpu is None else ours_cpu + pg_cpu
        share = ratio(ours_all, litellm["cpu"])
        found.append((f"CPU per chat request, ours + PostgreSQL ÷ LiteLLM's ({clients} clients) ≤ 0.3", share,
                      at_most(share, 0.3)))
    return found


def target_table(runs: list[dict], kinds: list[str], clients: int) -> None:
    print()
    print("| target (issue 12) | measured | met |")
    print("|---|---:|---|")
    per_run = [targets(run, kinds, clients) for run in runs]
    for index, (name, _, _) in enumerate(per_run[0]):
        entries = [found[index] for found in per_run if index < len(found)]
        met = " · ".join("–" if ok is None else ("yes" if ok else "**no**") for _, _, ok in entries)
        print(f"| {name} | {cells([figure for _, figure, _ in entries], '.2f')} | {met} |")


def profile_tables(runs: list[dict]) -> None:
    for label, run in shown(runs):
        for kind, found in run.get("profile", {}).items():
            samples = found["samples"] or 1
            print(f"\nprofile of ours, {kind}{label}: {found['samples']} py-spy samples of the thread holding the GIL "
                  f"(own: the frame was running; total: our function was on the stack)")
            print("| own % | function | total % | our function (app/) |")
            print("|---:|---|---:|---|")
            for (own_frame, own_count), (total_frame, total_count) in zip_longest(found["own"], found["total"],
                                                                                  fillvalue=("", 0)):
                print(f"| {100 * own_count / samples:.1f} | `{own_frame}` | {100 * total_count / samples:.1f} | "
                      f"`{total_frame}` |")
            if found.get("packages"):
                print("\nown samples by package: " + ", ".join(f"{name} {100 * count / samples:.0f} %"
                                                             for name, count in found["packages"]))


def report(runs: list[dict], paths: list[str]) -> None:
    for run in runs:
        highest = f" (highest after a measured run {run['load'][2]:.1f})" if len(run["load"]) > 2 else ""
        print(f"run: {run['machine']}; load average {run['load'][0]:.1f} → {run['load'][1]:.1f}{highest}")
    print()
    latency_tables(runs, paths)
    round_trip_tables(runs)
    kinds = list(dict.fromkeys(row["kind"] for row in runs[0]["rows"]))
    clients = max(row["clients"] for row in runs[0]["rows"])
    target_table(runs, kinds, clients)
    profile_tables(runs)


def count_round_trips(env: dict, work: Path, database_url: str, database: str, auth: list[dict],
                      kinds: list[str], count: int, figures: dict) -> int:
    """A third server (one worker) whose connections log every statement: warm it, then count. Returns the
    generations it made."""
    server = statement_log = None
    made = 0
    try:
        statement_log = StatementLog(database_url, database)
        server, url = start_gunicorn("wsgi:app", {**env, "PGOPTIONS": StatementLog.OPTIONS}, work / "counted.log",
                                     "/readyz", workers=1, threads=4)
        with requests.Session() as session:
            for kind in kinds:
                _, body, route = bodies()[kind]
                path = Route("ours", f"{url}/api/v1{route}", auth[:1], body)

                def send():
                    error = path.send(session)
                    if error:
                        raise RuntimeError(f"counted {kind}: {error}")

                for _ in range(10):  # warm the caches, the pool and the compiled statements
                    send()
                per_request, statements, listened = statement_log.count(send, count)
                made += 10 + count
                figures["round_trips"][kind] = per_request
                figures["statements"][kind] = [[shape, n / count] for shape, n in statements.most_common()]
                aside = f"; the LISTEN connection sent {listened} meanwhile, not counted" if listened else ""
                print(f"  {kind:5} round trips {per_request:.2f} per request ({count} requests counted{aside})",
                      flush=True)
    except (RuntimeError, OSError, sa.exc.SQLAlchemyError) as error:
        print(f"  round trips not counted: {error}")
    finally:
        stop(server)
        if statement_log is not None:
            statement_log.close()
    return made


def arguments(description: str, kinds: str) -> argparse.ArgumentParser:
    """The options gateway.py and peers.py share."""
    parser = argparse.ArgumentParser(description=description)
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
    parser.add_argument("--kinds", default=kinds, help="comma-separated: image, chat")
    parser.add_argument("--count-requests", type=int, default=20,
                        help="warm requests per kind whose statements are counted (0: skip the count)")
    parser.add_argument("--profile", action="store_true",
                        help="after measuring, profile ours with py-spy under one more concurrent run per kind "
                             "(twice --per-client, for more samples)")
    parser.add_argument("--profile-top", type=int, default=15, help="entries of the profile to print")
    parser.add_argument("--json", metavar="PATH", help="also write this run's figures to PATH")
    parser.add_argument("--combine", nargs="+", metavar="JSON",
                        help="measure nothing: print the tables of runs saved with --json side by side")
    parser.add_argument("--keep-logs", action="store_true", help="print where the logs are and keep them")
    return parser


def main(argv=None) -> int:
    parser = arguments(__doc__.split("\n", 1)[0], "image,chat")
    args = parser.parse_args(argv)
    if args.combine:
        runs = [json.loads(Path(path).read_text()) for path in args.combine]
        report(runs, [path for path in ("direct", "hop", "litellm", "ours")
                      if any(row["path"] == path for run in runs for row in run["rows"])])
        return 0
    kinds = [kind.strip() for kind in args.kinds.split(",") if kind.strip()]
    figures, failures = measure(args, kinds, [])
    if figures:
        report([figures], ["direct", "hop", "ours"])
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=1))
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("ledger.verify() == [] and every request left one COMPLETED generation")
    return 0


def measure(args, kinds: list[str], extra_paths: list, extra_groups: dict | None = None) -> tuple[dict, list[str]]:
    """Sets up, runs every path of every kind sequentially and concurrently with CPU metering, counts round
    trips, profiles if asked, and tears everything down. For peers.py: `extra_paths` are callables
    (kind, sandbox_url, work) → Route | None, `extra_groups` name → starter(sandbox_url, work) → the
    Popen of a server started in a session of its own (its process group is metered and stopped)."""
    work = Path(tempfile.mkdtemp(prefix="waule-bench-gw-"))
    sandbox = server = hop = meter = None
    drop = None
    peers: dict[str, subprocess.Popen] = {}
    failures: list[str] = []
    figures: dict = {}
    try:
        database_url, pg_version, drop = create_database(args.database_url)
        database = sa.engine.make_url(database_url).database
        sandbox, sandbox_url = start_sandbox(work)
        env = server_env(database_url, sandbox_url, work)
        api_keys = prepare(env, work, max(1, args.tenants))
        server, server_url = start_gunicorn("wsgi:app", env, work / "gunicorn.log", "/readyz", args.workers,
                                            args.threads)
        hop, hop_url = start_gunicorn("bench.hop:app", {"HOP_UPSTREAM": sandbox_url, "HOP_SECRET": SECRET},
                                      work / "hop.log", "/healthz", args.workers, args.threads)
        for name, starter in (extra_groups or {}).items():
            peers[name] = starter(sandbox_url, work)
        groups = {"sandbox": sandbox.pid, "hop": hop.pid, "ours": server.pid, **{n: p.pid for n, p in peers.items()}}
        meter = CpuMeter(args.database_url, database, groups)

        direct_auth = [{"Authorization": f"Bearer {SECRET}"}]
        ours_auth = [{"Authorization": f"Bearer {key}"} for key in api_keys]
        load_before = os.getloadavg()[0]
        figures = {"machine": f"{os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}, "
                              f"PostgreSQL {pg_version}; gunicorn {args.workers} gthread workers × {args.threads} "
                              f"threads; {len(api_keys)} tenant(s); {time.strftime('%Y-%m-%d %H:%M %Z')}",
                   "rows": [], "round_trips": {}, "statements": {}, "profile": {}}
        print(f"machine: {figures['machine']}; load average {load_before:.1f}", flush=True)
        completed, highest = 0, load_before
        for kind in kinds:
            direct_body, ours_body, route = bodies()[kind]
            paths = [Route("direct", f"{sandbox_url}/v1{route}", direct_auth, direct_body),
                     Route("hop", f"{hop_url}/v1{route}", direct_auth, direct_body)]
            paths += [path for path in (make(kind, sandbox_url, work) for make in extra_paths) if path]
            paths.append(Route("ours", f"{server_url}/api/v1{route}", ours_auth, ours_body))
            for path in paths:
                warm_up(path, args.clients)
            completed += args.clients * 2 + 10
            for mode in ("sequential", "concurrent"):
                clients = 1 if mode == "sequential" else args.clients
                for path in paths:
                    if mode == "sequential":
                        sample = measured(meter, lambda: run_sequential(path, args.sequential))
                    else:
                        sample = measured(meter, lambda: run_concurrent(path, args.clients, args.per_client))
                    failures += [f"{kind} {mode} {path.name}: {error}" for error in sample.errors[:3]]
                    highest = max(highest, os.getloadavg()[0])
                    row = row_figures(kind, clients, path.name, sample)
                    figures["rows"].append(row)
                    cpu = "" if row["cpu"] is None else f"  cpu {row['cpu']:5.2f} ms"
                    cpu += "" if row["cpu_pg"] is None else f"  pg {row['cpu_pg']:5.2f} ms"
                    print(f"  {kind:5} {mode:10} {path.name:7} p50 {row['p50']:7.1f} ms  p95 {row['p95']:7.1f} ms  "
                          f"{row['rps']:6.0f} req/s{cpu}", flush=True)
                    if path.name == "ours":
                        completed += len(sample.latencies)
        figures["load"] = [load_before, os.getloadavg()[0], highest]
        if args.count_requests > 0:
            completed += count_round_trips(env, work, database_url, database, ours_auth, kinds, args.count_requests,
                                           figures)
        if args.profile:
            for kind in kinds:
                _, ours_body, route = bodies()[kind]
                ours = Route("ours", f"{server_url}/api/v1{route}", ours_auth, ours_body)
                result = {}
                output = profile(server.pid, lambda: result.setdefault("sample", run_concurrent(
                    ours, args.clients, 2 * args.per_client)), 60, work, kind)
                completed += len(result["sample"].latencies) if "sample" in result else 0
                if output:
                    own, total, samples, packages = profile_top(output, args.profile_top)
                    figures["profile"][kind] = {"own": own, "total": total, "samples": samples, "packages": packages}
        stop(server)
        server = None
        failures += check(env, work, completed)
    finally:
        if meter is not None:
            meter.close()
        for process in peers.values():
            stop_group(process)
        stop(hop)
        stop(server)
        stop(sandbox, grace=5)
        if drop is not None:
            drop()
        if args.keep_logs:
            print(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return figures, failures


def stop_group(process: subprocess.Popen, grace: float = 15) -> None:
    """SIGTERM a server we started in its own session and its workers; SIGKILL the group if it lingers."""
    if process.returncode is not None:
        return  # stopped and reaped already: its group id may belong to someone else by now
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # workers the leader did not take down with it
    except ProcessLookupError:
        pass
    process.wait()


if __name__ == "__main__":
    sys.exit(main())
