"""CPU instructions and SQL statements per generation: a repeatable A/B measure for the request path.

Latency on a shared 2-CPU machine swings by ±30 % from run to run, more than most single changes to
the request path. Instructions retired do not: this script sends `--requests` chat or image
generations through the whole app in this process (Flask's test client → WSGI → our views and
services → PostgreSQL over TCP → a real sandbox process) and counts, with `perf stat`:

  app    instructions of this process per request (our Python, SQLAlchemy, psycopg2, requests, plus
         the test client, which is the same for every version of the code);
  all    instructions of the whole machine per request (adds PostgreSQL's backend, the sandbox and
         the kernel; other work on the machine leaks in, so compare it on a quiet machine).

and the SQL statements each request sends (SQLAlchemy events). Run it on two commits and compare.

    .venv/bin/python bench/instructions.py
    .venv/bin/python bench/instructions.py --kinds chat --requests 1000
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gateway as bench  # noqa: E402  (bench/gateway.py: the same set-up, bodies and keys)

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from config import load_config  # noqa: E402

BODIES = {
    "chat": ("/api/v1/chat/completions", {"model": bench.CHAT, "messages": bench.CHAT_MESSAGES, "max_tokens": 64}),
    "image": ("/api/v1/images/generations", {"model": bench.IMAGE, "prompt": bench.IMAGE_PROMPT, "size": "1024x1024"}),
}


def counted(scope: list[str], send, count: int) -> int:
    """Instructions retired while `send` runs `count` times, as perf stat counts them for `scope`."""
    perf = subprocess.Popen(["perf", "stat", "-x,", "-e", "instructions", *scope],
                            stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)  # let perf attach before the first request
        for _ in range(count):
            send()
    finally:
        perf.send_signal(signal.SIGINT)
        _, report = perf.communicate(timeout=30)
    for line in report.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[2].startswith("instructions"):
            return int(fields[0])
    raise RuntimeError(f"perf stat gave no instruction count (is perf supported here?):\n{report}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--kinds", default="chat,image")
    args = parser.parse_args(argv)
    if shutil.which("perf") is None:
        sys.exit("needs perf (Debian: apt-get install linux-perf)")

    work = Path(tempfile.mkdtemp(prefix="waule-bench-ins-"))
    sandbox = drop = app = None
    try:
        database_url, _, drop = bench.create_database(args.database_url)
        port = bench.free_port()
        sandbox_url, sandbox_log = f"http://127.0.0.1:{port}", work / "sandbox.log"
        with open(sandbox_log, "wb") as log:
            sandbox = subprocess.Popen(
                [sys.executable, "-m", "sandbox", "--host", "127.0.0.1", "--port", str(port),
                 "--files-dir", str(work / "sandbox-files"), "--quiet"],
                cwd=bench.ROOT, env={**os.environ, "SANDBOX_SECRET": bench.SECRET}, stdout=log,
                stderr=subprocess.STDOUT)
        bench.wait_for(f"{sandbox_url}/health", sandbox, sandbox_log, "the sandbox")
        env = bench.server_env(database_url, sandbox_url, work)
        key = bench.prepare(env, work, 1)[0]
        app = create_app({**load_config(env=env, instance_path=work / "instance"), "SKIP_ENV_CONFIG": True})
        client = app.test_client()
        statements = [0]
        with app.app_context():
            sa.event.listen(db.engine, "before_cursor_execute",
                            lambda *_: statements.__setitem__(0, statements[0] + 1))

        print("| request | requests | app instructions / request | all instructions / request | SQL statements / request |")
        print("|---|---:|---:|---:|---:|")
        for kind in [k.strip() for k in args.kinds.split(",") if k.strip()]:
            path, body = BODIES[kind]

            def send():
                response = client.post(path, json=body, headers={"Authorization": f"Bearer {key}"})
                if response.status_code != 200:
                    raise RuntimeError(f"{kind}: HTTP {response.status_code} {response.get_data()[:200]!r}")

            for _ in range(20):
                send()
            statements[0] = 0
            own = counted(["-p", str(os.getpid())], send, args.requests)
            sent = statements[0]
            everything = counted(["-a"], send, args.requests)
            print(f"| {kind} | {args.requests} | {own / args.requests / 1e6:.1f} M | "
                  f"{everything / args.requests / 1e6:.1f} M | {sent / args.requests:.0f} |", flush=True)
    finally:
        if app is not None:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
        bench.stop(sandbox, grace=5)
        if drop is not None:
            drop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
