"""Our server next to a peer: the LiteLLM proxy forwarding the same chat completions to the same sandbox.

bench/gateway.py measures direct, hop and ours; this adds a fourth path in the same run,

  litellm  the LiteLLM proxy (`litellm --config …`, 2 uvicorn workers like our 2 gunicorn workers, no
           database, a master key as its only auth) with one openai-compatible model that forwards to
           the sandbox's /v1/chat/completions with the sandbox's Bearer secret,

and prints, per path, latency, throughput and CPU per request (its process group, from /proc), the
added latency over direct, and the target of issue 12: our CPU per request, PostgreSQL's included,
at most 0.3× LiteLLM's.

LiteLLM is not a project dependency. It is installed from PyPI with pip into a venv of its own,
kept in ~/.cache/waule-bench/litellm-venv so reruns skip the install (delete that folder to drop
it, or pass --litellm-venv). When it cannot be installed or does not start, the run goes on without
it and says so.

    .venv/bin/python bench/peers.py                      # about 2 minutes, plus the install the first time
    .venv/bin/python bench/peers.py --json a.json ; .venv/bin/python bench/peers.py --json b.json
    .venv/bin/python bench/peers.py --combine a.json b.json
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gateway as bench  # noqa: E402  (bench/gateway.py: the set-up, the meters and the tables)

LITELLM_SPEC = "litellm[proxy]"


def install(venv: Path, spec: str) -> Path | None:
    """The litellm command in `venv`, installing it there first if needed; None (and why) when that fails."""
    command = venv / "bin" / "litellm"
    if command.exists():
        return command
    print(f"installing {spec} into {venv} (once; later runs reuse it) …", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True,
                       timeout=120)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", spec], check=True, capture_output=True,
                       text=True, timeout=900)
    except (OSError, subprocess.SubprocessError) as error:
        detail = getattr(error, "stderr", None) or error
        print(f"SKIPPING LiteLLM: it could not be installed from PyPI ({str(detail).strip()[-400:]})")
        return None
    return command if command.exists() else None


def litellm_starter(command: Path, state: dict):
    """gateway.measure's starter: the proxy on a free port with its own config, in a session of its own."""
    def start(sandbox_url: str, work: Path) -> subprocess.Popen:
        port = bench.free_port()
        config = work / "litellm.yaml"
        # JSON is YAML: no yaml writer needed here.
        config.write_text(json.dumps({"model_list": [{"model_name": bench.CHAT, "litellm_params": {
            "model": f"openai/{bench.CHAT}", "api_base": f"{sandbox_url}/v1", "api_key": bench.SECRET}}]}))
        master_key = "sk-" + secrets.token_hex(24)
        env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
        env.update({"LITELLM_MASTER_KEY": master_key, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                    "LITELLM_TELEMETRY": "False"})
        log_path = work / "litellm.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen([str(command), "--config", str(config), "--host", "127.0.0.1",
                                        "--port", str(port), "--num_workers", "2"],
                                       cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        state.update(process=process, url=f"http://127.0.0.1:{port}", key=master_key)
        deadline = time.monotonic() + 120  # it imports a lot: about 25 s on this machine
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if requests.get(f"{state['url']}/health/liveliness", timeout=1).ok:
                    return process
            except requests.RequestException:
                pass
            time.sleep(0.5)
        state["failed"] = log_path.read_text(errors="replace")[-2000:]
        print(f"SKIPPING LiteLLM: it did not start; its log:\n{state['failed']}")
        return process  # measured as an idle group and stopped at the end; its path is left out

    return start


def litellm_route(state: dict):
    def route(kind: str, sandbox_url: str, work: Path) -> bench.Route | None:
        if kind != "chat" or "url" not in state or "failed" in state:
            return None
        body = bench.bodies()["chat"][0]
        return bench.Route("litellm", f"{state['url']}/v1/chat/completions",
                           [{"Authorization": f"Bearer {state['key']}"}], body)

    return route


def main(argv=None) -> int:
    parser = bench.arguments(__doc__.split("\n", 1)[0], "chat")
    parser.add_argument("--litellm-venv", type=Path, default=Path.home() / ".cache" / "waule-bench" / "litellm-venv",
                        help="where LiteLLM is installed (and cached between runs)")
    parser.add_argument("--litellm-spec", default=LITELLM_SPEC, help="what pip installs there")
    args = parser.parse_args(argv)
    paths = ["direct", "hop", "litellm", "ours"]
    if args.combine:
        bench.report([json.loads(Path(path).read_text()) for path in args.combine], paths)
        return 0
    kinds = [kind.strip() for kind in args.kinds.split(",") if kind.strip()]
    command = install(args.litellm_venv, args.litellm_spec)
    state: dict = {}
    extra_paths, extra_groups = [], {}
    if command:
        extra_paths, extra_groups = [litellm_route(state)], {"litellm": litellm_starter(command, state)}
    try:
        figures, failures = bench.measure(args, kinds, extra_paths, extra_groups)
    finally:
        if "process" in state:  # interrupted while it started, before measure() took it over
            bench.stop_group(state["process"])
    if figures:
        version = subprocess.run([str(command.parent / "pip"), "show", "litellm"], capture_output=True,
                                 text=True).stdout if command else ""
        version = next((line.split(":", 1)[1].strip() for line in version.splitlines()
                        if line.startswith("Version:")), None)
        figures["machine"] += f"; LiteLLM {version}" if version else "; LiteLLM not measured"
        bench.report([figures], paths)
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=1))
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("ledger.verify() == [] and every request left one COMPLETED generation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
