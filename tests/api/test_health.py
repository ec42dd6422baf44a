"""Liveness (/healthz: the process answers) and readiness (/readyz: the database answers), as a load
balancer or orchestrator sees them: JSON, no credentials, and a 503 it can act on."""
from __future__ import annotations

import pytest

from tests.conftest import make_app

UNREACHABLE = {
    "postgres_closed_port": "postgresql+psycopg2://postgres@127.0.0.1:1/nowhere?connect_timeout=2",
    "sqlite_missing_directory": "sqlite:////nonexistent-waule-dir/sub/waule.db",
}


def test_healthz_says_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.is_json
    assert response.get_json() == {"status": "ok"}
    assert response.headers["X-Request-Id"]


def test_readyz_is_ok_with_the_database_up(client):
    response = client.get("/readyz")
    assert response.status_code == 200 and response.is_json
    assert response.get_json()["status"] == "ok"


@pytest.fixture(params=sorted(UNREACHABLE))
def app_without_database(request, migrated, test_env, tmp_path):
    return make_app(test_env, tmp_path / "instance", SQLALCHEMY_DATABASE_URI=UNREACHABLE[request.param])


def test_readyz_is_503_json_when_the_database_is_unreachable(app_without_database, caplog):
    client = app_without_database.test_client()
    response = client.get("/readyz")
    assert response.status_code == 503 and response.is_json
    body = response.get_json()
    assert body["status"] == "unavailable" and body["database"] == "unreachable"
    text = response.get_data(as_text=True)
    assert "127.0.0.1" not in text and "nonexistent" not in text, "no connection details in the answer"
    assert "readiness check failed" in caplog.text, "the reason goes to the log"
    # liveness does not depend on the database: restarting the process would not help
    assert client.get("/healthz").status_code == 200
    # the failed check leaves no broken session behind: the next probe answers the same way
    assert client.get("/readyz").status_code == 503


def test_health_endpoints_need_no_credentials_and_refuse_other_methods(client):
    for path in ("/healthz", "/readyz"):
        assert client.get(path, headers={"Authorization": "Bearer garbage"}).status_code == 200
        assert client.head(path).status_code == 200
        assert client.post(path).status_code == 405
