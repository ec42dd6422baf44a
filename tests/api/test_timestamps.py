"""Every ISO timestamp the JSON APIs answer has one form, RFC 3339 in UTC with a `Z`
(`2025-01-01T00:00:00Z`, fractional seconds when there are any); fields OpenAI's shapes define as Unix
seconds (`created`) stay integers. Walks the answers of /api/v1 and /admin/api after a little of
everything has happened, so a timestamp added later is checked too."""
from __future__ import annotations

import re

from app.gateway import registry as gateways
from tests.conftest import TEST_ACTOR, key_headers

RFC3339_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")
LOOKS_LIKE_A_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T")
UNIX_SECONDS = {"created"}


def _walk(node, where: str):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{where}.{key}")
            if key in UNIX_SECONDS:
                yield f"{where}.{key}", value
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{where}[{index}]")
    elif isinstance(node, str) and LOOKS_LIKE_A_TIMESTAMP.match(node):
        yield where, node


def _offences(answers: dict[str, dict]) -> tuple[list, int]:
    offences, stamps = [], 0
    for path, body in answers.items():
        for where, value in _walk(body, path):
            stamps += 1
            if where.rsplit(".", 1)[-1] in UNIX_SECONDS:
                if not isinstance(value, int) or isinstance(value, bool):
                    offences.append((where, value))
            elif not RFC3339_Z.fullmatch(value):
                offences.append((where, value))
    return offences, stamps


def _get_all(client, headers, paths) -> dict[str, dict]:
    answers = {}
    for path in paths:
        response = client.get(path, headers=headers)
        assert response.status_code == 200, (path, response.get_json())
        answers[path] = response.get_json()
    return answers


def test_every_timestamp_on_both_apis_is_rfc3339_utc_with_z(client, make):
    acme = make.funded_tenant("Acme")
    boss = make.user(acme, "boss", role="admin")
    make.user(acme, "alice")
    member_headers = make.auth(acme, boss)
    gateways.create_gateway(TEST_ACTOR, name="spare", base_url="http://gateway.test", secret="s" * 20)
    tenant_headers = key_headers(acme)
    generated = client.post("/api/v1/images/generations", headers=tenant_headers,
                            json={"model": "doubao-seedream-4-0-250828", "prompt": "a fox"})
    assert generated.status_code == 200, generated.get_json()
    generation_id = generated.get_json()["generation_id"]
    admin_headers = make.admin_token_headers()
    tenant = f"/admin/api/tenants/{acme.tenant.id}"
    recharge = client.post(f"{tenant}/recharge", headers=admin_headers, json={"amount": 5})
    assert recharge.status_code == 201

    answers = {"POST /images/generations": generated.get_json(), "POST recharge": recharge.get_json()}
    answers |= _get_all(client, tenant_headers, [
        "/api/v1/me", "/api/v1/models", "/api/v1/transactions", "/api/v1/generations",
        f"/api/v1/generations/{generation_id}"])
    answers |= {f"{path} (tenant admin)": body for path, body in _get_all(client, member_headers, [
        "/api/v1/me", "/api/v1/tenant/keys", "/api/v1/tenant/members", "/api/v1/tenant/devices"]).items()}
    answers |= _get_all(client, admin_headers, [
        "/admin/api/tenants", tenant, f"{tenant}/keys", f"{tenant}/members", f"{tenant}/devices",
        f"{tenant}/transactions", f"{tenant}/usage", "/admin/api/gateways", "/admin/api/models"])

    offences, stamps = _offences(answers)
    assert stamps >= 40, "the walk should have met plenty of timestamps"
    assert not offences, offences
    timeline = answers[f"/api/v1/generations/{generation_id}"]["timeline"]
    assert [step["status"] for step in timeline] == ["PENDING", "GENERATING", "UPLOADING", "COMPLETED"]
