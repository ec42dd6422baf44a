"""The `flask` commands an operator and `make run` use, through Flask's CLI runner."""
import base64
import json
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.identity import admins
from app.models import ApiKey, AuditLog, PlatformAdmin, Tenant, TenantUser
from tests.admin.conftest import Dashboard
from tests.conftest import PASSWORD


def ok(result):
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result


def failed(result, words: str):
    """An operator's mistake: exit 1 and a one-line reason on stderr, never a traceback."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit)
    assert words in result.stderr and "Traceback" not in result.output
    return result


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def ops(runner):
    ok(runner.invoke(args=["admins", "create", "--username", "ops", "--password", PASSWORD]))
    return "ops"


def issue_token(runner, username="ops") -> str:
    result = ok(runner.invoke(args=["admins", "token", username]))
    token = result.stdout.strip()
    assert re.fullmatch(r"wa_pat_[A-Za-z0-9]{40}", token), result.stdout  # stdout is the token alone, for $(...)
    return token


def test_admins_create_and_list(runner):
    result = ok(runner.invoke(args=["admins", "create", "--username", "ops", "--password", PASSWORD]))
    assert "Created platform admin ops" in result.output and PASSWORD not in result.output
    listing = ok(runner.invoke(args=["admins", "list"])).output
    assert re.search(r"ops\s+active", listing)


@pytest.mark.parametrize("args, words", [
    (["--username", "ops", "--password", "short"], "at least 8 characters"),
    (["--username", "ops", "--password", "x" * 73], "72 bytes"),
    (["--username", "no", "--password", PASSWORD], "Username"),
])
def test_admins_create_refuses_bad_input_without_a_traceback(runner, args, words):
    failed(runner.invoke(args=["admins", "create", *args]), words)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(PlatformAdmin)) == 0


def test_admins_create_refuses_a_taken_username(runner, ops):
    failed(runner.invoke(args=["admins", "create", "--username", "OPS", "--password", PASSWORD]), "already exists")


def test_admin_token_works_on_the_admin_api_until_revoked(runner, client, ops):
    token = issue_token(runner)
    assert client.get("/admin/api/tenants", headers=bearer(token)).status_code == 200

    listing = ok(runner.invoke(args=["admins", "tokens", "ops"])).output
    assert token not in listing
    token_id, prefix = re.search(r"^(\S+)\s+(wa_pat_\w+)…\s+cli\s+active$", listing, re.M).groups()
    assert token.startswith(prefix)

    ok(runner.invoke(args=["admins", "revoke-token", token_id]))
    response = client.get("/admin/api/tenants", headers=bearer(token))
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "invalid_admin_token"
    assert re.search(r"cli\s+revoked$", ok(runner.invoke(args=["admins", "tokens", "ops"])).output, re.M)


def test_token_commands_explain_mistakes(runner, ops):
    failed(runner.invoke(args=["admins", "token", "nobody"]), "No admin named 'nobody'")
    failed(runner.invoke(args=["admins", "tokens", "nobody"]), "No admin named 'nobody'")
    failed(runner.invoke(args=["admins", "revoke-token", "not-an-id"]), "No such token")
    failed(runner.invoke(args=["admins", "token", "ops", "--name", "x" * 81]), "1 to 80 characters")


def test_deactivated_admin_loses_tokens_and_gets_no_new_ones(runner, client, ops):
    token = issue_token(runner)
    result = ok(runner.invoke(args=["admins", "deactivate", "ops"]))
    assert "Deactivated ops" in result.output
    assert client.get("/admin/api/tenants", headers=bearer(token)).status_code == 401
    failed(runner.invoke(args=["admins", "token", "ops"]), "inactive")
    assert re.search(r"ops\s+inactive", ok(runner.invoke(args=["admins", "list"])).output)


def test_admins_unlock_ends_a_dashboard_lockout(runner, client, app, ops):
    dashboard = Dashboard(client)
    for _ in range(app.config["LOGIN_FAILURES_PER_USER"]):
        assert dashboard.sign_in("ops", "wrong-password").status_code == 401
    assert dashboard.sign_in("ops").status_code == 429

    assert "Unlocked ops" in ok(runner.invoke(args=["admins", "unlock", "OPS"])).output
    assert dashboard.sign_in("ops").status_code == 302
    unlock = db.session.scalar(sa.select(AuditLog).where(AuditLog.action == "admin.unlock"))
    assert unlock.actor_name == "cli"
    failed(runner.invoke(args=["admins", "unlock", "nobody"]), "No admin named 'nobody'")


def test_admins_unlock_clears_an_address_only_when_asked(runner, client, app, ops):
    """An address's count is shared by every account tried from it, so it is cleared only by name."""
    dashboard = Dashboard(client)  # the test client's address is 127.0.0.1
    for n in range(app.config["LOGIN_FAILURES_PER_IP"]):
        assert dashboard.sign_in(f"guess{n}", "wrong-password").status_code == 401
    assert dashboard.sign_in("ops").status_code == 429

    ok(runner.invoke(args=["admins", "unlock", "ops"]))
    assert dashboard.sign_in("ops").status_code == 429
    result = ok(runner.invoke(args=["admins", "unlock", "ops", "--ip", "127.0.0.1"]))
    assert "127.0.0.1" in result.output
    assert dashboard.sign_in("ops").status_code == 302
    failed(runner.invoke(args=["admins", "unlock", "ops", "--ip", "not-an-address"]), "IP address")


def test_tenants_create_json_prints_a_working_key_for_scripts(runner, client, ops):
    result = ok(runner.invoke(args=["tenants", "create", "--name", "Acme", "--seats", "3", "--json"]))
    created = json.loads(result.stdout)
    assert created["tenant"]["name"] == "Acme" and created["tenant"]["max_seats"] == 3
    assert created["api_key"]["key"].startswith("wk_live_") and "api_secret" not in created

    me = client.get("/api/v1/me", headers=bearer(created["api_key"]["key"]))
    assert me.status_code == 200 and me.get_json()["tenant"]["id"] == created["tenant"]["id"]
    shown = client.get(f"/admin/api/tenants/{created['tenant']['id']}", headers=bearer(issue_token(runner)))
    assert shown.get_json()["max_seats"] == 3


def test_tenants_create_with_an_admin_and_no_device_binding(runner, client):
    result = ok(runner.invoke(args=["tenants", "create", "--name", "Beta", "--admin-username", "boss",
                                    "--admin-password", PASSWORD, "--no-device-binding"]))
    key = re.search(r"API key \(shown once\):\s+(wk_live_\w+)", result.output).group(1)
    assert "secret" not in result.output.lower()
    login = client.post("/api/v1/auth/login", json={"api_key": key, "username": "boss", "password": PASSWORD})
    assert login.status_code == 200 and login.get_json()["user"]["role"] == "admin"


def test_tenants_create_explains_mistakes(runner):
    failed(runner.invoke(args=["tenants", "create", "--name", "Acme", "--admin-username", "boss"]),
           "admin_password")
    failed(runner.invoke(args=["tenants", "create", "--name", "   "]), "name is required")
    assert runner.invoke(args=["tenants", "create", "--name", "Acme", "--seats", "-1"]).exit_code == 2  # usage
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Tenant)) == 0


def test_secrets_generate_prints_a_fresh_env_set(runner):
    def generate() -> dict:
        lines = ok(runner.invoke(args=["secrets", "generate"])).stdout.strip().splitlines()
        return dict(line.split("=", 1) for line in lines)

    first, second = generate(), generate()
    assert set(first) == {"SECRET_KEY", "JWT_SECRET", "CONFIG_ENCRYPTION_KEY", "KEY_PEPPER"}
    assert len(base64.b64decode(first["CONFIG_ENCRYPTION_KEY"], validate=True)) == 32
    assert all(len(value) >= 32 for value in first.values())
    assert all(first[name] != second[name] for name in first)


def demo_credentials(app) -> tuple[Path, dict]:
    path = Path(app.instance_path) / "demo-credentials.txt"
    text = path.read_text()
    found = {
        "live_key": re.search(r"live API key\s+(wk_live_\w+)", text).group(1),
        "test_key": re.search(r"test API key\s+(wk_test_\w+)", text).group(1),
        "admin": re.search(r"platform admin\s+admin / (\S+)", text).group(1),
        "tenant_admin": re.search(r"tenant admin\s+demo-admin / (\S+)", text).group(1),
        "alice": re.search(r"member\s+alice / (\S+)", text).group(1),
        "bob": re.search(r"member\s+bob / (\S+)", text).group(1),
    }
    return path, found


def row_counts() -> tuple:
    return tuple(db.session.scalar(sa.select(sa.func.count()).select_from(model))
                 for model in (PlatformAdmin, Tenant, TenantUser, ApiKey))


def test_demo_seed_writes_working_credentials_once(runner, client, app):
    result = ok(runner.invoke(args=["demo", "seed"]))
    path, credentials = demo_credentials(app)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert credentials["live_key"] in result.output  # printed once, too

    for key, mode in ((credentials["live_key"], "live"), (credentials["test_key"], "test")):
        me = client.get("/api/v1/me", headers=bearer(key))
        assert me.status_code == 200 and me.get_json()["mode"] == mode
    for username in ("demo-admin", "alice", "bob"):
        password = credentials["tenant_admin" if username == "demo-admin" else username]
        response = client.post("/api/v1/auth/login", json={"api_key": credentials["live_key"], "username": username,
                                                           "password": password, "device_id": f"{username}-laptop"})
        assert response.status_code == 200, response.get_json()
    assert admins.sign_in("admin", credentials["admin"], None).username == "admin"  # the dashboard sign-in

    before, text = row_counts(), path.read_text()
    assert before == (1, 1, 3, 2)
    again = ok(runner.invoke(args=["demo", "seed"]))
    assert "already present" in again.output and credentials["live_key"] not in again.output
    assert row_counts() == before and path.read_text() == text


def test_demo_seed_still_seeds_after_an_operator_made_their_own_admin(runner, app, ops):
    ok(runner.invoke(args=["demo", "seed"]))
    _path, credentials = demo_credentials(app)
    assert credentials["alice"]
    assert row_counts()[:2] == (2, 1)


def test_keys_flush_usage_writes_buffered_counts(runner, client, app, make):
    app.config["KEY_USAGE_FLUSH_SECONDS"] = 3600  # as in production: requests only gather counts
    acme = make.tenant()
    assert client.get("/api/v1/me", headers=bearer(acme.api_key_plaintext)).status_code == 200
    key = db.session.get(ApiKey, acme.api_key.id)
    db.session.refresh(key)
    assert key.request_count == 0 and key.last_used_at is None

    result = ok(runner.invoke(args=["keys", "flush-usage"]))
    assert re.fullmatch(r"Flushed [1-9]\d* key\(s\)\.", result.stdout.strip())
    db.session.refresh(key)
    assert key.request_count == 1 and key.last_used_at is not None
    assert ok(runner.invoke(args=["keys", "flush-usage"])).stdout.strip() == "Flushed 0 key(s)."


def test_the_readmes_try_it_lines_find_the_demo_key_and_password(runner, client, app, tmp_path):
    """A newcomer copies the README's `Try it` lines after `make run`: they must yield working values."""
    ok(runner.invoke(args=["demo", "seed"]))
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    lines = [line for line in readme.splitlines() if re.match(r"(KEY|PASSWORD)=\$\(awk ", line)]
    assert [line.split("=", 1)[0] for line in lines] == ["KEY", "PASSWORD"]
    clone = tmp_path / "clone"  # as a checkout looks after `make run`: instance/demo-credentials.txt
    (clone / "instance").mkdir(parents=True)
    shutil.copy(Path(app.instance_path) / "demo-credentials.txt", clone / "instance")
    shell = "\n".join(lines) + '\necho "$KEY"\necho "$PASSWORD"'
    key, password = subprocess.run(["bash", "-c", shell], cwd=clone, capture_output=True, text=True,
                                   check=True).stdout.split()
    response = client.post("/api/v1/auth/login", json={"api_key": key, "username": "alice", "password": password,
                                                        "device_id": "laptop-1"})
    assert response.status_code == 200, response.get_json()
