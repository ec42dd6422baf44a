"""Configuration from the environment, parsed strictly.

Every setting comes from an environment variable (a `.env` file in development). In production a
missing or weak secret stops start-up with a message naming it; in development the secrets are
generated once and kept under `instance/secrets.json`, so restarts keep sessions and encrypted data.
"""
from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

ENVIRONMENTS = ("development", "production", "test")
SECRET_NAMES = ("SECRET_KEY", "JWT_SECRET", "CONFIG_ENCRYPTION_KEY", "KEY_PEPPER")
MIN_SECRET_LENGTH = 32


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names it."""


def generate_secrets() -> dict[str, str]:
    return {
        "SECRET_KEY": secrets.token_urlsafe(48),
        "JWT_SECRET": secrets.token_urlsafe(48),
        "CONFIG_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "KEY_PEPPER": secrets.token_urlsafe(48),
    }


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _encryption_key(value: str) -> bytes:
    try:
        key = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("CONFIG_ENCRYPTION_KEY must be base64 (32 random bytes)") from None
    if len(key) != 32:
        raise ConfigError(f"CONFIG_ENCRYPTION_KEY must decode to 32 bytes, got {len(key)}")
    return key


def _read_secrets_file(path: Path) -> dict[str, str]:
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path} is unreadable ({error}); delete it to generate new secrets") from None
    if not isinstance(stored, dict):
        raise ConfigError(f"{path} must hold a JSON object; delete it to generate new secrets")
    return stored


def _development_secrets(instance_path: Path) -> dict[str, str]:
    path = instance_path / "secrets.json"
    if path.exists():
        return _read_secrets_file(path)
    instance_path.mkdir(parents=True, exist_ok=True)
    generated = generate_secrets()
    # Written 0600 from the first byte, then linked into place: link() never replaces a file, so when
    # several processes start at once they all end up with the first one's secrets.
    draft = instance_path / f".secrets.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    with os.fdopen(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
        json.dump(generated, file, indent=2)
    try:
        os.link(draft, path)
    except FileExistsError:
        return _read_secrets_file(path)
    finally:
        draft.unlink()
    return generated


def _secrets(env: Mapping[str, str], environment: str, instance_path: Path) -> dict[str, str]:
    fallback = _development_secrets(instance_path) if environment == "development" else {}
    values = {}
    for name in SECRET_NAMES:
        value = env.get(name, "").strip() or fallback.get(name, "")
        if not value:
            raise ConfigError(f"{name} is not set; `flask secrets generate` prints a fresh set")
        if name != "CONFIG_ENCRYPTION_KEY" and len(value) < MIN_SECRET_LENGTH:
            raise ConfigError(f"{name} is too weak: use at least {MIN_SECRET_LENGTH} random characters")
        values[name] = value
    return values


def normalize_database_url(url: str) -> str:
    """Accept the usual spellings; SQLAlchemy 2.1 would pick psycopg 3 for a bare postgresql:// URL."""
    for spelling in ("postgres://", "postgresql://"):
        if url.startswith(spelling):
            return "postgresql+psycopg2://" + url[len(spelling):]
    if not url.startswith(("sqlite:", "postgresql+psycopg2://")):
        raise ConfigError("DATABASE_URL must be a sqlite:// or postgresql:// URL")
    return url


def _engine_options(database_url: str) -> dict:
    """No `pool_pre_ping`: it costs a round trip on every checkout, that is on every request. A
    connection the server dropped fails on first use instead; SQLAlchemy then invalidates it and every
    connection pooled before it, so one request fails and the next ones get fresh connections (the
    phase statements resend once where a second run cannot write twice: generation/phases.py)."""
    if database_url.startswith("sqlite"):
        # The embedded default shares one file between the web processes and the worker: wait for a
        # writer (up to 30 s) instead of failing with "database is locked" (WAL is set per connection).
        return {"connect_args": {"timeout": 30}}
    return {}


def _cache_ttl(env: Mapping[str, str], database_url: str) -> float:
    """How long a process may serve a cached key, tenant, model or gateway without reading it again. On
    PostgreSQL changes are announced at once (LISTEN/NOTIFY) and this is only the backstop; SQLite has
    no channel between processes, so there it is the bound itself and at most 1 second."""
    if database_url.startswith("sqlite"):
        return float(_int(env, "CACHE_TTL_SECONDS", 1, 0, 1))
    return float(_int(env, "CACHE_TTL_SECONDS", 10, 0, 300))


DEFAULT_PORTS = {"http": 80, "https": 443}


def url_origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL, host lower-cased and port filled in; None if it has none."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in DEFAULT_PORTS or not host or port == 0 or any(c.isspace() for c in host):
        return None
    return scheme, host, port or DEFAULT_PORTS[scheme]


def strict_origin(text: str) -> tuple[str, str, int] | None:
    """The origin of `text` when it is scheme://host[:port] and nothing more (a trailing / at most)."""
    try:
        path = urlsplit(text).path
    except ValueError:
        return None
    if path not in ("", "/") or any(c in "?#@" or c.isspace() for c in text):
        return None
    return url_origin(text)


def origin_text(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def _gateway_url(env: Mapping[str, str], name: str, default: str = "") -> str:
    url = env.get(name, "").strip() or default
    if url and url_origin(url) is None:
        raise ConfigError(f"{name} must be an http(s):// URL with a host (and a valid port, if any), got {url!r}")
    return url


def _gateway_settings(env: Mapping[str, str], environment: str) -> dict:
    """waule-api: the default gateway, its timeouts, and the sandbox that test-mode keys use."""
    url = _gateway_url(env, "WAULEAPI_URL", "" if environment == "production" else "http://127.0.0.1:9000")
    secret = env.get("WAULEAPI_SECRET", "").strip() or env.get("INTERNAL_SECRET", "").strip()
    if url and not secret:
        if environment == "production":
            raise ConfigError("WAULEAPI_SECRET is not set (the gateway's shared secret)")
        secret = "sandbox-secret"  # what `python -m sandbox` accepts when nothing is configured
    prefix = env.get("WAULEAPI_PATH_PREFIX", "/v1").strip() or "/v1"
    if not prefix.startswith("/"):
        raise ConfigError("WAULEAPI_PATH_PREFIX must start with /, e.g. /v1 or /internal/v1")
    sandbox_url = _gateway_url(env, "SANDBOX_URL")
    return {
        "WAULEAPI_URL": url,
        "WAULEAPI_SECRET": secret,
        "WAULEAPI_PATH_PREFIX": prefix.rstrip("/"),
        "WAULEAPI_CONNECT_TIMEOUT": _int(env, "WAULEAPI_CONNECT_TIMEOUT", 5, 1, 60),
        "WAULEAPI_TIMEOUTS": {
            "image": _int(env, "WAULEAPI_TIMEOUT_IMAGE", 300, 1, 3600),
            "audio": _int(env, "WAULEAPI_TIMEOUT_AUDIO", 120, 1, 3600),
            "chat": _int(env, "WAULEAPI_TIMEOUT_CHAT", 300, 1, 3600),
            "video": _int(env, "WAULEAPI_TIMEOUT_VIDEO", 1500, 1, 7200),
            "midjourney": _int(env, "WAULEAPI_TIMEOUT_MIDJOURNEY", 60, 1, 3600),
        },
        "SANDBOX_URL": sandbox_url,
        # How long the in-process sandbox lets [sandbox:timeout] / [sandbox:slow=N] hold a thread.
        "SANDBOX_TIMEOUT_CAP": _int(env, "SANDBOX_TIMEOUT_CAP", 30, 0, 3600),
        "SANDBOX_SECRET": env.get("SANDBOX_SECRET", "").strip() or secret or "sandbox-secret",
    }


def _allowlist_entry(entry: str) -> list[str] | None:
    """An origin as itself; a bare host as its http and https origins on the default ports."""
    if "://" in entry:
        origin = strict_origin(entry)
        return [origin_text(*origin)] if origin else None
    host = entry.lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host.rstrip(".")
    if not host or any(c in host for c in "/?#@[]") or any(c.isspace() for c in host):
        return None
    if ":" in host:  # an IPv6 address; a name with a port needs a scheme
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    return [origin_text(scheme, host, port) for scheme, port in DEFAULT_PORTS.items()]


def _origin_list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated origins (http://10.0.0.5:8080) or bare hosts, as scheme://host:port each."""
    origins = []
    for entry in env.get(name, "").split(","):
        if not entry.strip():
            continue
        found = _allowlist_entry(entry.strip())
        if found is None:
            raise ConfigError(f"{name} takes origins or host names, e.g. http://10.0.0.5:8080,cdn.example.com "
                              f"(a bare host means ports 80 and 443 only); got {entry.strip()!r}")
        origins.extend(found)
    return tuple(dict.fromkeys(origins))


STORAGE_BACKENDS = ("local", "oss", "s3")
MiB = 1024 * 1024
# The bucket settings of each cloud backend: (variable, required). OSS signs for its endpoint alone;
# S3's region is part of its signature (R2 takes "auto"), and AWS itself needs no endpoint.
BUCKET_SETTINGS = {
    "oss": (("OSS_ENDPOINT", True), ("OSS_BUCKET", True), ("OSS_ACCESS_KEY_ID", True),
            ("OSS_ACCESS_KEY_SECRET", True), ("OSS_CUSTOM_DOMAIN", False)),
    "s3": (("S3_ENDPOINT", False), ("S3_REGION", True), ("S3_BUCKET", True), ("S3_ACCESS_KEY_ID", True),
           ("S3_SECRET_ACCESS_KEY", True), ("S3_PUBLIC_ENDPOINT", False)),
}
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _bucket_settings(env: Mapping[str, str], backend: str) -> dict:
    """The platform bucket's settings for a cloud backend: each required one present, URLs that are
    http(s) origins, a bucket name either provider accepts."""
    values = {}
    for name, required in BUCKET_SETTINGS[backend]:
        value = env.get(name, "").strip()
        if required and not value:
            raise ConfigError(f"{name} is not set (STORAGE_BACKEND={backend} needs it)")
        if value and name.endswith(("_ENDPOINT", "_DOMAIN")) and strict_origin(value) is None:
            raise ConfigError(f"{name} must be an http(s):// origin such as https://oss-cn-beijing.aliyuncs.com "
                              f"(no path), got {value!r}")
        values[name] = value.rstrip("/")
    bucket = values[f"{backend.upper()}_BUCKET"]
    if not _BUCKET_NAME.match(bucket) or ".." in bucket:
        raise ConfigError(f"{backend.upper()}_BUCKET must be a bucket name (3-63 lower-case letters, digits, "
                          f"dots and hyphens), got {bucket!r}")
    return values


def _storage_settings(env: Mapping[str, str], instance_path: Path) -> dict:
    """Where results live, and the guard on copying them from the gateway's URLs."""
    storage_dir = env.get("STORAGE_DIR", "").strip() or str((instance_path / "storage").resolve())
    backend = env.get("STORAGE_BACKEND", "").strip().lower() or "local"
    if backend not in STORAGE_BACKENDS:
        raise ConfigError(f"STORAGE_BACKEND must be one of {', '.join(STORAGE_BACKENDS)}, got {backend!r}")
    fetch_max = _int(env, "FETCH_MAX_BYTES", 200 * MiB, 1024, 16 * 1024 ** 3)
    return {
        "STORAGE_DIR": storage_dir,
        "STORAGE_BACKEND": backend,
        "STORAGE_BUCKET": _bucket_settings(env, backend) if backend != "local" else {},
        # Where client libraries may write (oss2's upload checkpoints) and results are spooled while copied.
        "STORAGE_TEMP_DIR": env.get("STORAGE_TEMP_DIR", "").strip() or str((instance_path / "tmp").resolve()),
        "STORAGE_PART_BYTES": _int(env, "STORAGE_PART_BYTES", 8 * MiB, 5 * MiB, 1024 * MiB),
        "STORAGE_URL_SECONDS": _int(env, "STORAGE_URL_SECONDS", 300, 10, 7 * 86400),
        "UPLOAD_MAX_BYTES": _int(env, "UPLOAD_MAX_BYTES", 500 * MiB, 1024, 5 * 1024 ** 3),
        "UPLOAD_URL_SECONDS": _int(env, "UPLOAD_URL_SECONDS", 3600, 60, 7 * 86400),
        "FETCH_ALLOWLIST": _origin_list(env, "FETCH_ALLOWLIST"),
        "FETCH_MAX_BYTES": fetch_max,
        "FETCH_MAX_BYTES_VIDEO": _int(env, "FETCH_MAX_BYTES_VIDEO", 4 * 1024 ** 3, 1024, 64 * 1024 ** 3),
        "FETCH_TIMEOUT_SECONDS": _int(env, "FETCH_TIMEOUT_SECONDS", 120, 1, 3600),
        "FETCH_TIMEOUT_SECONDS_VIDEO": _int(env, "FETCH_TIMEOUT_SECONDS_VIDEO", 600, 1, 86400),
    }


def _webhook_settings(env: Mapping[str, str], environment: str) -> dict:
    """Outgoing webhooks, and the public address their links to stored results are built on."""
    base = env.get("PUBLIC_BASE_URL", "").strip().rstrip("/")
    if not base:
        if environment == "production":
            raise ConfigError("PUBLIC_BASE_URL is not set (where clients reach this server, "
                              "e.g. https://api.example.com)")
        base = "http://127.0.0.1:5000"
    if not base.startswith(("http://", "https://")):
        raise ConfigError(f"PUBLIC_BASE_URL must be an http(s):// URL, got {base!r}")
    return {
        "PUBLIC_BASE_URL": base,
        "WEBHOOK_TIMEOUT_SECONDS": _int(env, "WEBHOOK_TIMEOUT_SECONDS", 10, 1, 60),
    }


GENERATION_KINDS = ("image", "audio", "chat", "video", "midjourney")
# Seconds a generation may run once its gateway call starts, and may wait in the queue before that.
DEFAULT_DEADLINES = {"image": 420, "audio": 240, "chat": 420, "video": 1800, "midjourney": 600}
DEFAULT_QUEUE_LIMITS = {"image": 600, "audio": 600, "chat": 600, "video": 3600, "midjourney": 3600}


def _generation_settings(env: Mapping[str, str]) -> dict:
    """Deadlines and queue limits per kind (down to a few seconds, for tests and small deployments),
    the worker's lease, Midjourney polling and the per-tenant cap on long jobs."""
    return {
        "GENERATION_DEADLINES": {kind: _int(env, f"GENERATION_DEADLINE_{kind.upper()}", DEFAULT_DEADLINES[kind], 3,
                                            86400) for kind in GENERATION_KINDS},
        "GENERATION_QUEUE_LIMITS": {kind: _int(env, f"GENERATION_QUEUE_LIMIT_{kind.upper()}",
                                               DEFAULT_QUEUE_LIMITS[kind], 3, 86400) for kind in GENERATION_KINDS},
        "GENERATION_LEASE_SECONDS": _int(env, "GENERATION_LEASE_SECONDS", 60, 3, 3600),
        "RECONCILE_PENDING_SECONDS": _int(env, "RECONCILE_PENDING_SECONDS", 60, 1, 86400),
        "MIDJOURNEY_POLL_SECONDS": _int(env, "MIDJOURNEY_POLL_SECONDS", 5, 1, 300),
        "MAX_ACTIVE_LONG_JOBS": _int(env, "MAX_ACTIVE_LONG_JOBS", 20, 1, 100_000),
    }


JOB_QUEUES = ("sqlite", "redis", "immediate")


def _job_settings(env: Mapping[str, str], instance_path: Path, redis_url: str) -> dict:
    """The job queue: Redis when REDIS_URL is set, else a SQLite file in the instance folder."""
    queue = env.get("JOBS_QUEUE", "").strip().lower() or ("redis" if redis_url else "sqlite")
    if queue not in JOB_QUEUES:
        raise ConfigError(f"JOBS_QUEUE must be one of {', '.join(JOB_QUEUES)}, got {queue!r}")
    if queue == "redis" and not redis_url:
        raise ConfigError("JOBS_QUEUE=redis needs REDIS_URL")
    return {
        "JOBS_QUEUE": queue,
        "JOBS_PREFIX": env.get("JOBS_PREFIX", "").strip() or "waule",
        "JOBS_SQLITE_PATH": env.get("JOBS_SQLITE_PATH", "").strip() or str((instance_path / "jobs.db").resolve()),
        "WORKER_THREADS": {"long": _int(env, "WORKER_THREADS_LONG", 8, 1, 256),
                           "short": _int(env, "WORKER_THREADS_SHORT", 4, 1, 256)},
    }


def load_config(env: Mapping[str, str] | None = None, instance_path: str | Path = "instance") -> dict:
    """Build the Flask config mapping from environment variables."""
    env = os.environ if env is None else env
    instance_path = Path(instance_path)
    environment = env.get("WAULE_ENV", "development").strip() or "development"
    if environment not in ENVIRONMENTS:
        raise ConfigError(f"WAULE_ENV must be one of {', '.join(ENVIRONMENTS)}, got {environment!r}")

    secret_values = _secrets(env, environment, instance_path)
    database_url = env.get("DATABASE_URL", "").strip()
    if not database_url:
        if environment == "production":
            raise ConfigError("DATABASE_URL is not set")
        database_url = f"sqlite:///{(instance_path / 'waule.db').resolve()}"
    database_url = normalize_database_url(database_url)

    redis_url = env.get("REDIS_URL", "").strip()
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("REDIS_URL must be a redis:// URL")

    return {
        "WAULE_ENV": environment,
        "INSTANCE_PATH": str(instance_path.resolve()),
        "TESTING": environment == "test",
        "SECRET_KEY": secret_values["SECRET_KEY"],
        "JWT_SECRET_KEY": secret_values["JWT_SECRET"],
        "CONFIG_ENCRYPTION_KEY": _encryption_key(secret_values["CONFIG_ENCRYPTION_KEY"]),
        "KEY_PEPPER": secret_values["KEY_PEPPER"].encode(),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": _engine_options(database_url),
        "REDIS_URL": redis_url,
        "MAX_CONTENT_LENGTH": _int(env, "MAX_BODY_BYTES", 10 * 1024 * 1024, 1024, 512 * 1024 * 1024),
        "JWT_ACCESS_TOKEN_EXPIRES": _int(env, "JWT_ACCESS_MINUTES", 60, 1, 24 * 60) * 60,
        "REFRESH_TOKEN_DAYS": _int(env, "REFRESH_TOKEN_DAYS", 30, 1, 365),
        "BCRYPT_ROUNDS": _int(env, "BCRYPT_ROUNDS", 12, 4, 16),
        "ADMIN_SESSION_MINUTES": _int(env, "ADMIN_SESSION_MINUTES", 60, 1, 7 * 24 * 60),
        "LOGIN_FAILURES_PER_USER": _int(env, "LOGIN_FAILURES_PER_USER", 5, 1, 1000),
        "LOGIN_FAILURES_PER_IP": _int(env, "LOGIN_FAILURES_PER_IP", 30, 1, 100000),
        "LOGIN_FAILURE_WINDOW_SECONDS": _int(env, "LOGIN_FAILURE_WINDOW_SECONDS", 900, 1, 86400),
        "KEY_USAGE_FLUSH_SECONDS": _int(env, "KEY_USAGE_FLUSH_SECONDS", 10, 0, 3600),
        "CACHE_TTL_SECONDS": _cache_ttl(env, database_url),
        "GATEWAY_CIRCUIT_FAILURES": _int(env, "GATEWAY_CIRCUIT_FAILURES", 3, 1, 1000),
        "GATEWAY_CIRCUIT_COOLDOWN_SECONDS": _int(env, "GATEWAY_CIRCUIT_COOLDOWN_SECONDS", 30, 1, 3600),
        "SESSION_COOKIE_SECURE": _bool(env, "SESSION_COOKIE_SECURE", environment == "production"),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "TRUST_PROXY_HOPS": _int(env, "TRUST_PROXY_HOPS", 0, 0, 5),
        "RECHARGE_MAX_CREDITS": _int(env, "RECHARGE_MAX_CREDITS", 10_000_000, 1, 10**12),
        "SEAT_PRICE_CREDITS": _int(env, "SEAT_PRICE_CREDITS", 1000, 0, 10**9),
        # How long a hold outlives its generation's deadline before `flask holds expire` releases it blind.
        "HOLD_TTL_SECONDS": _int(env, "HOLD_TTL_SECONDS", 600, 60, 7 * 86400),
        **_gateway_settings(env, environment),
        **_storage_settings(env, instance_path),
        **_job_settings(env, instance_path, redis_url),
        **_webhook_settings(env, environment),
        **_generation_settings(env),
        "DEMO_SEED": _bool(env, "DEMO_SEED", environment == "development"),
    }
