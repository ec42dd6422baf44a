"""`python -m sandbox --host 127.0.0.1 --port 9000`: the sandbox gateway on werkzeug's threaded server.

Threaded, so a `[sandbox:slow=N]` or `[sandbox:timeout]` request never holds up the others.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from werkzeug.serving import make_server

from sandbox import DEFAULT_FILES_DIR, DEFAULT_PREFIXES, DEFAULT_TIMEOUT_CAP, create_app, resolve_secret


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="The sandbox waule-api gateway.")
    parser.add_argument("--host", default=env.get("SANDBOX_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=env.get("SANDBOX_PORT", "9000"))
    parser.add_argument("--files-dir", default=env.get("SANDBOX_FILES_DIR") or DEFAULT_FILES_DIR,
                        help="where result files are written (default: %(default)s)")
    parser.add_argument("--public-url", default=env.get("SANDBOX_PUBLIC_URL") or None,
                        help="base of result URLs (default: the host each request came to)")
    parser.add_argument("--prefix", action="append", dest="prefixes",
                        help="route prefix, repeatable (default: /v1 and /internal/v1)")
    parser.add_argument("--timeout-cap", type=float, default=env.get("SANDBOX_TIMEOUT_CAP", str(DEFAULT_TIMEOUT_CAP)),
                        help="seconds [sandbox:timeout] holds a request (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    args = parser.parse_args(argv)
    if args.timeout_cap < 0:
        parser.error("--timeout-cap must not be negative")
    if not args.prefixes:
        env_prefixes = [p for p in env.get("SANDBOX_PREFIXES", "").split(",") if p.strip()]
        args.prefixes = env_prefixes or list(DEFAULT_PREFIXES)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    app = create_app(secret=resolve_secret(), files_dir=args.files_dir, public_url=args.public_url,
                     prefixes=args.prefixes, timeout_cap=args.timeout_cap)
    if args.quiet:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server(args.host, args.port, app, threaded=True)
    print(f"sandbox: serving http://{args.host}:{server.port} (prefixes {', '.join(args.prefixes)}; "
          f"files in {os.path.abspath(args.files_dir)})", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
