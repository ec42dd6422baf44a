"""Hold+settle pairs per second on PostgreSQL, through the real phase statements, from several processes.

One pair is what every paid generation does to the database. `--mode phases` (the default) is what
a paid chat does on PostgreSQL: `phases.hold` (one autocommitted statement: the conditional UPDATE
of the tenant, the hold, the GENERATING generation) and `phases.settle` (one autocommitted
statement: the generation's compare-and-set, the hold settled, the tenant's balance and held, the
CONSUME entry, the usage record and its daily rollup). `--mode ledger` is the portable ledger alone,
as before: `ledger.hold` in one transaction, `ledger.settle` in another (less work per pair: no
generation, no usage). Scenarios:

  hot-N     one tenant, N client threads in all: every transaction queues on the same tenant row
  spread    --tenants tenants, --spread-threads threads: the same work without one row to fight over

The threads are spread over --processes client processes (one app, one pool each), so the client's
Python is not one interpreter's lock. The script creates its own database (waule_bench_<random>),
applies the project's migrations, runs each scenario for --seconds, checks `ledger.verify() == []`
and that every counted pair left exactly one CONSUME entry, prints a table, and drops the database.

    .venv/bin/python bench/ledger.py                       # the defaults: about a minute
    .venv/bin/python bench/ledger.py --seconds 5 --hot-threads 1,4 --mode ledger
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app  # noqa: E402
from app.billing import accounts as billing  # noqa: E402
from app.billing import ledger  # noqa: E402
from app.billing.models import CreditHold  # noqa: E402
from app.cli import migrations  # noqa: E402
from app.core.db import utcnow  # noqa: E402
from app.core.transaction import atomic  # noqa: E402
from app.extensions import db  # noqa: E402
from app.generation import phases  # noqa: E402
from app.generation.models import Generation  # noqa: E402
from app.identity import tenants  # noqa: E402
from app.identity.audit import Actor  # noqa: E402
from app.models import LedgerEntry  # noqa: E402
from config import generate_secrets, load_config, normalize_database_url  # noqa: E402

BENCH = Actor(kind="system", name="bench")
HOLD, CHARGE = 10, 7          # each pair holds 10 and settles 7 (3 return to available)
FUNDS = 10**11                # enough that no scenario can run a tenant dry
MODEL = "bench-chat"


@dataclass
class Result:
    name: str
    threads: int
    tenants: int
    processes: int = 1
    mode: str = "phases"
    pairs: int = 0
    all_pairs: int = 0   # warm-up included, for the CPU figure
    errors: int = 0
    client_cpu: float = 0.0  # the client processes' CPU seconds over the whole scenario
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.pairs / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_pair(self) -> float:
        """Milliseconds of client CPU per pair (Python, SQLAlchemy, psycopg2), all processes summed."""
        return self.client_cpu / self.all_pairs * 1000 if self.all_pairs else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def create_database(server_url: str):
    server_url = normalize_database_url(server_url)
    name = f"waule_bench_{uuid.uuid4().hex[:10]}"
    admin_engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(server_url).set(database=name).render_as_string(hide_password=False)

    def drop():
        with admin_engine.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin_engine.dispose()

    return name, url, drop


def make_app(url: str, pool_size: int):
    env = {**generate_secrets(), "WAULE_ENV": "production", "DATABASE_URL": url, "REDIS_URL": "",
           "KEY_USAGE_FLUSH_SECONDS": "0", "PUBLIC_BASE_URL": "http://127.0.0.1:8000"}
    config = load_config(env=env, instance_path=tempfile.mkdtemp(prefix="waule-bench-"))
    # The engine options production uses (no pre-ping), with a pool as large as this process's threads.
    config.update(SKIP_ENV_CONFIG=True, RECHARGE_MAX_CREDITS=FUNDS,
                  SQLALCHEMY_ENGINE_OPTIONS={**config["SQLALCHEMY_ENGINE_OPTIONS"], "pool_size": pool_size,
                                             "max_overflow": 0, "pool_timeout": 60})
    return create_app(config)


def funded_tenants(count: int, label: str) -> list[uuid.UUID]:
    ids = []
    for i in range(count):
        created = tenants.create_tenant(BENCH, name=f"bench {label} {i + 1}")
        billing.recharge(created.tenant.id, FUNDS, BENCH)
        ids.append(created.tenant.id)
    return ids


def phase_pair(tenant_id: uuid.UUID, tag: str) -> None:
    """A paid chat's two statements, as flow.start and flow.finish build them."""
    now = utcnow()
    generation = Generation(id=uuid.uuid4(), tenant_id=tenant_id, user_id=None, api_key_id=None, model=MODEL,
                            kind="chat", is_test=False, params={"model": MODEL, "messages": []}, credits_held=HOLD,
                            status="GENERATING", timeline=[{"status": "PENDING", "at": "t"},
                                                           {"status": "GENERATING", "at": "t"}],
                            deadline_at=now + timedelta(minutes=5), started_at=now, progress=0)
    hold = CreditHold(id=uuid.uuid4(), tenant_id=tenant_id, amount=HOLD, status="HELD",
                      reference=f"generation:{generation.id}", description=f"chat {MODEL}",
                      expires_at=now + timedelta(minutes=15), created_at=now)
    generation.hold_id = hold.id
    phases.hold(generation, hold, needs_bytes=0)
    generation.output = {"content": tag}
    generation.credits_charged, generation.progress, generation.completed_at = CHARGE, 100, utcnow()
    generation.upstream_ms, generation.status = 1, "COMPLETED"
    generation.timeline = [*generation.timeline, {"status": "COMPLETED", "at": "t"}]
    phases.settle(generation, CHARGE, BENCH, description=f"chat {MODEL}", event="generation.completed",
                  usage={"input_tokens": 12, "output_tokens": 30, "latency_ms": 1})
    db.session.expunge(generation)


def ledger_pair(tenant_id: uuid.UUID, tag: str) -> None:
    with atomic():
        hold_id = ledger.hold(tenant_id, HOLD, reference=tag).id
    with atomic():
        ledger.settle(hold_id, CHARGE, BENCH, description="bench")


def client_process(url, mode, tenant_ids, threads, first, step, seconds, warmup, barrier, results):
    """One client process: `threads` threads, thread i of all walking the tenants from `first + i`."""
    app = make_app(url, pool_size=threads + 1)
    pair = phase_pair if mode == "phases" else ledger_pair
    lock, totals = threading.Lock(), {"pairs": 0, "all_pairs": 0, "errors": 0, "latencies": []}
    ready = threading.Barrier(threads + 1)
    window = {}

    def work(index: int):
        pairs, all_pairs, errors, latencies = 0, 0, 0, []
        with app.app_context():
            ready.wait()
            n = first + index
            while True:
                now = time.perf_counter()
                if now >= window["end"]:
                    break
                tenant_id = tenant_ids[n % len(tenant_ids)]
                n += step  # threads walk the tenants in step, so all of them stay busy
                try:
                    pair(tenant_id, f"bench-{first}-{index}-{n}")
                except Exception as error:  # noqa: BLE001 - counted and reported, never expected
                    errors += 1
                    print(f"  {type(error).__name__}: {error}", file=sys.stderr)
                    db.session.rollback()
                    continue
                all_pairs += 1
                if now >= window["start"]:  # pairs begun during the warm-up do not count
                    pairs += 1
                    latencies.append(time.perf_counter() - now)
            db.session.remove()
        with lock:
            totals["pairs"] += pairs
            totals["all_pairs"] += all_pairs
            totals["errors"] += errors
            totals["latencies"].extend(latencies)

    workers = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()  # every process is ready: the window starts now, in all of them
    started, cpu_started = time.perf_counter(), time.process_time()
    window["start"], window["end"] = started + warmup, started + warmup + seconds
    ready.wait()
    for worker in workers:
        worker.join()
    totals["seconds"] = time.perf_counter() - window["start"]
    totals["cpu"] = time.process_time() - cpu_started
    with app.app_context():
        db.engine.dispose()
    results.put(totals)


def run_scenario(url: str, mode: str, name: str, tenant_ids: list[uuid.UUID], threads: int, processes: int,
                 seconds: float, warmup: float) -> Result:
    processes = max(1, min(processes, threads))
    result = Result(name, threads, len(tenant_ids), processes)
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no engine or pool shared by a fork
    barrier, results = context.Barrier(processes), context.Queue()
    shares = [threads // processes + (1 if i < threads % processes else 0) for i in range(processes)]
    children, first = [], 0
    for share in shares:
        children.append(context.Process(target=client_process, args=(
            url, mode, tenant_ids, share, first, threads, seconds, warmup, barrier, results)))
        first += share
    for child in children:
        child.start()
    for _ in children:
        totals = results.get(timeout=seconds + warmup + 300)
        result.pairs += totals["pairs"]
        result.all_pairs += totals["all_pairs"]
        result.errors += totals["errors"]
        result.latencies.extend(totals["latencies"])
        result.client_cpu += totals["cpu"]
        result.seconds = max(result.seconds, totals["seconds"])
    for child in children:
        child.join()
    return result


def consume_entries(tenant_ids) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(LedgerEntry)
                             .where(LedgerEntry.type == "CONSUME", LedgerEntry.tenant_id.in_(tenant_ids)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL server; the benchmark makes and drops its own database there")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per scenario")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each scenario")
    parser.add_argument("--hot-threads", default="1,8,32", help="thread counts for the one-tenant scenario")
    parser.add_argument("--tenants", type=int, default=50, help="tenants in the spread scenario")
    parser.add_argument("--spread-threads", type=int, default=32, help="threads in the spread scenario")
    parser.add_argument("--processes", type=int, default=4, help="client processes the threads are spread over")
    parser.add_argument("--mode", choices=("phases", "ledger", "both"), default="phases",
                        help="phases: a paid chat's two statements; ledger: ledger.hold/settle in two transactions; "
                             "both: each scenario in both modes, one after the other, and their ratio")
    args = parser.parse_args(argv)
    hot_threads = [int(n) for n in args.hot_threads.split(",") if n.strip()]
    modes = ["phases", "ledger"] if args.mode == "both" else [args.mode]
    if not args.database_url.startswith(("postgres://", "postgresql://", "postgresql+psycopg2://")):
        parser.error("the ledger benchmark needs PostgreSQL")

    load_before = os.getloadavg()[0]
    name, url, drop = create_database(args.database_url)
    print(f"database {name}; mode {args.mode}; {args.processes} client processes; {args.seconds:g} s per scenario "
          f"after {args.warmup:g} s warm-up")
    results, problems, counted_ok, server = [], [], True, "?"
    try:
        app = make_app(url, pool_size=2)
        migrations.bind(app)
        with app.app_context():
            from flask_migrate import upgrade
            upgrade()
            server = db.session.scalar(sa.text("SHOW server_version"))
            hot = funded_tenants(1, "hot")
            spread = funded_tenants(args.tenants, "spread")
            db.session.remove()

            scenarios = [(f"hot-{n}", hot, n) for n in hot_threads]
            scenarios.append((f"spread-{args.tenants}", spread, args.spread_threads))
            for label, tenant_ids, threads in scenarios:
                for mode in modes:
                    before = consume_entries(tenant_ids)
                    db.session.remove()
                    result = run_scenario(url, mode, label, tenant_ids, threads, args.processes, args.seconds,
                                          args.warmup)
                    result.mode = mode
                    results.append(result)
                    print(f"  {label:<12} {mode:<7} {result.per_second:8.0f} pairs/s", flush=True)
                    # every pair settled once, whether inside the measured window or the warm-up
                    written = consume_entries(tenant_ids) - before
                    db.session.remove()
                    if written < result.pairs:
                        counted_ok = False
                        print(f"  {label}: {result.pairs} pairs counted but {written} CONSUME entries", file=sys.stderr)

            problems = ledger.verify()
            db.session.remove()
            db.engine.dispose()
    finally:
        drop()

    print()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(f"PostgreSQL {server}; {os.cpu_count()} CPUs, {memory:.0f} GiB; client and server on this machine; "
          f"1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(f"{'scenario':<12} {'mode':<7} {'tenants':>7} {'procs':>5} {'threads':>7} {'pairs':>8} {'pairs/s':>9}"
          f" {'vs ledger':>9} {'p50 ms':>7} {'p99 ms':>7} {'cpu ms':>6} {'errors':>6}")
    by_mode = {(r.name, r.mode): r for r in results}
    for r in results:
        other = by_mode.get((r.name, "ledger"))
        ratio = f"{r.per_second / other.per_second:8.2f}x" if other and other.per_second else f"{'':>9}"
        print(f"{r.name:<12} {r.mode:<7} {r.tenants:>7} {r.processes:>5} {r.threads:>7} {r.pairs:>8} "
              f"{r.per_second:>9.0f} {ratio} {r.percentile(0.5):>7.1f} {r.percentile(0.99):>7.1f} "
              f"{r.cpu_per_pair:>6.2f} {r.errors:>6}")
    for mode in modes:
        mine = [r for r in results if r.mode == mode]
        hot_best = max((r for r in mine if r.name.startswith("hot-")), key=lambda r: r.per_second, default=None)
        if hot_best and mine[-1] is not hot_best:
            print(f"{mode}: spread vs best hot ({hot_best.name}): {mine[-1].per_second / hot_best.per_second:.2f}x; "
                  f"mean over scenarios {statistics.mean(r.per_second for r in mine):.0f} pairs/s")
    if problems:
        print("\nledger.verify() found problems:", *problems[:20], sep="\n  ")
    else:
        print("\nledger.verify(): [] (every balance equals its entries, every hold resolved once)")
    failed = bool(problems) or not counted_ok or any(r.errors for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
