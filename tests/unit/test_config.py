"""Configuration is parsed strictly: a missing or malformed setting stops start-up with a message naming
it; development keeps generated secrets under instance/."""
from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from config import SECRET_NAMES, ConfigError, generate_secrets, load_config

ROOT = Path(__file__).resolve().parents[2]


def production(**changes) -> dict:
    env = {**generate_secrets(), "WAULE_ENV": "production",
           "DATABASE_URL": "postgresql://waule:pw@db.internal:5432/waule", "PUBLIC_BASE_URL": "https://api.example.com"}
    env.update(changes)
    return {name: value for name, value in env.items() if value is not None}


def test_a_complete_production_environment_loads(tmp_path):
    config = load_config(env=production(), instance_path=tmp_path)
    assert config["WAULE_ENV"] == "production" and not config["TESTING"]
    assert config["SESSION_COOKIE_SECURE"] is True
    assert config["DEMO_SEED"] is False
    assert len(config["CONFIG_ENCRYPTION_KEY"]) == 32
    assert not (tmp_path / "secrets.json").exists(), "production never writes secrets to disk"


@pytest.mark.parametrize("name", SECRET_NAMES)
@pytest.mark.parametrize("value", [None, "", "   "])
def test_production_refuses_a_missing_secret_naming_it(tmp_path, name, value):
    with pytest.raises(ConfigError, match=name):
        load_config(env=production(**{name: value}), instance_path=tmp_path)


@pytest.mark.parametrize("name", ["SECRET_KEY", "JWT_SECRET", "KEY_PEPPER"])
def test_production_refuses_a_weak_secret_naming_it(tmp_path, name):
    with pytest.raises(ConfigError, match=f"{name}.*weak"):
        load_config(env=production(**{name: "changeme"}), instance_path=tmp_path)
    with pytest.raises(ConfigError, match=name):
        load_config(env=production(**{name: "x" * 31}), instance_path=tmp_path)
    load_config(env=production(**{name: "x" * 32}), instance_path=tmp_path)


@pytest.mark.parametrize("value", [
    "not base64 at all!",
    base64.b64encode(b"sixteen byte key").decode(),          # valid base64, 16 bytes
    base64.b64encode(os.urandom(33)).decode(),              # one byte too many
    base64.urlsafe_b64encode(b"\xfb" * 32).decode(),        # url-safe alphabet is not what we print
])
def test_encryption_key_must_be_32_bytes_of_base64(tmp_path, value):
    with pytest.raises(ConfigError, match="CONFIG_ENCRYPTION_KEY"):
        load_config(env=production(CONFIG_ENCRYPTION_KEY=value), instance_path=tmp_path)


@pytest.mark.parametrize("name, value", [
    ("MAX_BODY_BYTES", "ten megabytes"),
    ("MAX_BODY_BYTES", "12"),            # below the floor
    ("JWT_ACCESS_MINUTES", "1.5"),
    ("JWT_ACCESS_MINUTES", "0"),
    ("BCRYPT_ROUNDS", "99"),
    ("LOGIN_FAILURES_PER_USER", "-1"),
    ("TRUST_PROXY_HOPS", "many"),
    ("SESSION_COOKIE_SECURE", "maybe"),
    ("DEMO_SEED", "2"),
    ("REDIS_URL", "localhost:6379"),
    ("DATABASE_URL", "mysql://root@localhost/waule"),
    ("JOBS_QUEUE", "rabbit"),
    ("WORKER_THREADS_LONG", "0"),
])
def test_malformed_values_are_refused_naming_the_variable(tmp_path, name, value):
    with pytest.raises(ConfigError, match=name) as raised:
        load_config(env=production(**{name: value}), instance_path=tmp_path)
    if name != "DATABASE_URL":  # a URL may hold a password: do not echo it
        assert value.strip() in str(raised.value) or "between" in str(raised.value) or "URL" in str(raised.value)


def test_good_integers_and_booleans_are_read(tmp_path):
    config = load_config(env=production(MAX_BODY_BYTES="2048", JWT_ACCESS_MINUTES=" 15 ", BCRYPT_ROUNDS="10",
                                        SESSION_COOKIE_SECURE="no", DEMO_SEED="yes", TRUST_PROXY_HOPS="1",
                                        REDIS_URL="redis://cache:6379/0"), instance_path=tmp_path)
    assert config["MAX_CONTENT_LENGTH"] == 2048
    assert config["JWT_ACCESS_TOKEN_EXPIRES"] == 15 * 60
    assert config["BCRYPT_ROUNDS"] == 10
    assert config["SESSION_COOKIE_SECURE"] is False and config["DEMO_SEED"] is True
    assert config["REDIS_URL"] == "redis://cache:6379/0"


@pytest.mark.parametrize("value", ["prod", "Production", "staging"])
def test_unknown_environment_is_refused(tmp_path, value):
    with pytest.raises(ConfigError, match="WAULE_ENV"):
        load_config(env=production(WAULE_ENV=value), instance_path=tmp_path)


def test_production_needs_a_database_url(tmp_path):
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load_config(env=production(DATABASE_URL=None), instance_path=tmp_path)


def test_production_needs_a_public_base_url_for_the_links_webhooks_carry(tmp_path):
    with pytest.raises(ConfigError, match="PUBLIC_BASE_URL"):
        load_config(env=production(PUBLIC_BASE_URL=None), instance_path=tmp_path)
    with pytest.raises(ConfigError, match="PUBLIC_BASE_URL must be an http"):
        load_config(env=production(PUBLIC_BASE_URL="api.example.com"), instance_path=tmp_path)
    config = load_config(env=production(PUBLIC_BASE_URL="https://api.example.com/"), instance_path=tmp_path)
    assert config["PUBLIC_BASE_URL"] == "https://api.example.com"
    assert config["WEBHOOK_TIMEOUT_SECONDS"] == 10


@pytest.mark.parametrize("url", ["postgres://u:p@db:5432/waule", "postgresql://u:p@db:5432/waule",
                                 "postgresql+psycopg2://u:p@db:5432/waule"])
def test_postgres_urls_normalise_to_psycopg2(tmp_path, url):
    config = load_config(env=production(DATABASE_URL=url), instance_path=tmp_path)
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg2://u:p@db:5432/waule"


def test_development_generates_secrets_once_and_keeps_them(tmp_path):
    instance = tmp_path / "instance"
    first = load_config(env={}, instance_path=instance)
    path = instance / "secrets.json"
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "secrets must not be readable by other users"
    stored = json.loads(path.read_text())
    assert set(stored) == set(SECRET_NAMES)

    second = load_config(env={}, instance_path=instance)
    for name in ("SECRET_KEY", "JWT_SECRET_KEY", "CONFIG_ENCRYPTION_KEY", "KEY_PEPPER"):
        assert first[name] == second[name], f"{name} changed across restarts"
    assert json.loads(path.read_text()) == stored
    assert first["WAULE_ENV"] == "development" and first["DEMO_SEED"] is True
    assert first["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{(instance / 'waule.db').resolve()}"


def test_development_environment_values_win_over_the_generated_ones(tmp_path):
    load_config(env={}, instance_path=tmp_path)
    mine = "m" * 40
    assert load_config(env={"SECRET_KEY": mine}, instance_path=tmp_path)["SECRET_KEY"] == mine


def test_a_damaged_development_secrets_file_is_named(tmp_path):
    (tmp_path / "secrets.json").write_text("{not json")
    with pytest.raises(ConfigError, match="secrets.json"):
        load_config(env={}, instance_path=tmp_path)


def test_test_environment_generates_nothing(tmp_path):
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_config(env={"WAULE_ENV": "test"}, instance_path=tmp_path)
    assert not (tmp_path / "secrets.json").exists()


def _flask(args, env, cwd) -> subprocess.CompletedProcess:
    """The real `flask` command, with only the variables given (no .env from the checkout)."""
    full_env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "FLASK_APP": "wsgi",
                "FLASK_SKIP_DOTENV": "1", "WAULE_INSTANCE_PATH": str(cwd / "instance"), **env}
    return subprocess.run([sys.executable, "-m", "flask", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=60)


def test_flask_secrets_generate_output_is_accepted_in_production(runner, tmp_path):
    result = runner.invoke(args=["secrets", "generate"])
    assert result.exit_code == 0, result.output
    generated = dict(line.split("=", 1) for line in result.output.strip().splitlines())
    assert set(generated) == set(SECRET_NAMES)
    env = {**generated, "WAULE_ENV": "production", "DATABASE_URL": "postgres://u@db/waule",
           "PUBLIC_BASE_URL": "https://api.example.com"}
    config = load_config(env=env, instance_path=tmp_path)
    assert config["SECRET_KEY"] == generated["SECRET_KEY"]
    again = dict(line.split("=", 1) for line in runner.invoke(args=["secrets", "generate"]).output.splitlines())
    assert again["SECRET_KEY"] != generated["SECRET_KEY"], "every call prints a fresh set"


def test_create_app_refuses_to_start_naming_the_setting(tmp_path, monkeypatch):
    from app import create_app

    for name in list(os.environ):
        if name in SECRET_NAMES or name in ("DATABASE_URL", "WAULE_ENV"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("WAULE_INSTANCE_PATH", str(tmp_path))
    for name, value in {**production(), "JWT_SECRET": "short"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        create_app()


def test_the_server_command_refuses_to_start_with_a_clear_message(tmp_path):
    env = {**production(KEY_PEPPER=None)}
    result = _flask(["routes"], env, tmp_path)
    assert result.returncode != 0
    assert "KEY_PEPPER is not set" in result.stderr
    for name in ("SECRET_KEY", "JWT_SECRET"):
        assert env[name] not in result.stderr + result.stdout, "never print a secret"


def test_processes_starting_together_agree_on_the_development_secrets(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=8) as pool:
        configs = list(pool.map(lambda _: load_config(env={}, instance_path=tmp_path), range(16)))
    assert len({config["SECRET_KEY"] for config in configs}) == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".secrets")] == []


def test_the_job_queue_follows_redis_and_refuses_redis_without_it(tmp_path):
    assert load_config(env=production(), instance_path=tmp_path)["JOBS_QUEUE"] == "sqlite"
    assert load_config(env=production(REDIS_URL="redis://cache:6379/0"), instance_path=tmp_path)["JOBS_QUEUE"] == "redis"
    with pytest.raises(ConfigError, match="JOBS_QUEUE=redis needs REDIS_URL"):
        load_config(env=production(JOBS_QUEUE="redis"), instance_path=tmp_path)


S3_BUCKET_ENV = {"STORAGE_BACKEND": "s3", "S3_ENDPOINT": "https://account.r2.cloudflarestorage.com",
                 "S3_REGION": "auto", "S3_BUCKET": "waule-results", "S3_ACCESS_KEY_ID": "AKIA0000",
                 "S3_SECRET_ACCESS_KEY": "secret"}
OSS_BUCKET_ENV = {"STORAGE_BACKEND": "oss", "OSS_ENDPOINT": "https://oss-cn-beijing.aliyuncs.com",
                  "OSS_BUCKET": "waule-results", "OSS_ACCESS_KEY_ID": "LTAI0000", "OSS_ACCESS_KEY_SECRET": "secret"}


def test_storage_defaults_to_the_local_disk_with_per_kind_download_caps(tmp_path):
    config = load_config(env=production(), instance_path=tmp_path)
    assert config["STORAGE_BACKEND"] == "local" and config["STORAGE_BUCKET"] == {}
    assert config["FETCH_MAX_BYTES"] == 200 * 1024 ** 2 and config["FETCH_MAX_BYTES_VIDEO"] == 4 * 1024 ** 3
    assert config["STORAGE_TEMP_DIR"] == str((tmp_path / "tmp").resolve())  # never the home directory


@pytest.mark.parametrize("env", [S3_BUCKET_ENV, OSS_BUCKET_ENV])
def test_a_cloud_bucket_loads_with_its_settings(tmp_path, env):
    config = load_config(env=production(**env), instance_path=tmp_path)
    assert config["STORAGE_BACKEND"] == env["STORAGE_BACKEND"]
    assert config["STORAGE_BUCKET"][f"{env['STORAGE_BACKEND'].upper()}_BUCKET"] == "waule-results"


@pytest.mark.parametrize("env, changes, named", [
    (S3_BUCKET_ENV, {"STORAGE_BACKEND": "gcs"}, "STORAGE_BACKEND"),
    (S3_BUCKET_ENV, {"S3_BUCKET": None}, "S3_BUCKET"),
    (S3_BUCKET_ENV, {"S3_SECRET_ACCESS_KEY": ""}, "S3_SECRET_ACCESS_KEY"),
    (S3_BUCKET_ENV, {"S3_REGION": None}, "S3_REGION"),
    (S3_BUCKET_ENV, {"S3_ENDPOINT": "ftp://minio.internal"}, "S3_ENDPOINT"),
    (S3_BUCKET_ENV, {"S3_PUBLIC_ENDPOINT": "https://cdn.example.com/files"}, "S3_PUBLIC_ENDPOINT"),
    (S3_BUCKET_ENV, {"S3_BUCKET": "Not_A_Bucket"}, "S3_BUCKET"),
    (OSS_BUCKET_ENV, {"OSS_ENDPOINT": None}, "OSS_ENDPOINT"),
    (OSS_BUCKET_ENV, {"OSS_ACCESS_KEY_SECRET": None}, "OSS_ACCESS_KEY_SECRET"),
    (OSS_BUCKET_ENV, {"OSS_CUSTOM_DOMAIN": "files.example.com"}, "OSS_CUSTOM_DOMAIN"),
    (S3_BUCKET_ENV, {"STORAGE_PART_BYTES": "1024"}, "STORAGE_PART_BYTES"),
    (S3_BUCKET_ENV, {"FETCH_MAX_BYTES_VIDEO": "lots"}, "FETCH_MAX_BYTES_VIDEO"),
    (S3_BUCKET_ENV, {"STORAGE_URL_SECONDS": "0"}, "STORAGE_URL_SECONDS"),
])
def test_a_missing_or_malformed_storage_setting_stops_start_up_naming_it(tmp_path, env, changes, named):
    with pytest.raises(ConfigError, match=named):
        load_config(env=production(**{**env, **changes}), instance_path=tmp_path)
