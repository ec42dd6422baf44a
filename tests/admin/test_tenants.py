import re

from app.identity import api_keys, devices, users
from tests.admin.conftest import audit_entries, text_of
from tests.conftest import PASSWORD, assert_error


def one(entries: list):
    assert len(entries) == 1, entries
    return entries[0]


KEY = re.compile(r"wk_(live|test)_[A-Za-z0-9]{32}")


def test_creating_a_tenant_shows_its_key_once_and_the_key_works(dashboard, client):
    response = dashboard.post("/admin/tenants/new", {
        "name": "Acme Studio", "contact_name": "Ann", "contact_email": "ann@acme.test", "max_seats": "3",
        "require_device": "on", "admin_username": "acme-admin", "admin_password": "admin-password-1"})
    assert response.status_code == 200
    assert response.headers["HX-Retarget"] == "#content" and response.headers["Cache-Control"] == "no-store"
    page = text_of(response)
    key = KEY.search(page).group(0)
    assert "will not be shown again" in page and 'data-copy="#new-api-key"' in page

    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert me.status_code == 200 and me.get_json()["tenant"]["name"] == "Acme Studio"

    tenant_id = me.get_json()["tenant"]["id"]
    for url in ("/admin/tenants", f"/admin/tenants/{tenant_id}", "/admin/audit", "/admin/"):
        later = text_of(dashboard.get(url))
        assert key not in later, url
        assert key[:16] in later or url != f"/admin/tenants/{tenant_id}"  # the prefix identifies it
    entry = one(audit_entries(action="tenant.create"))
    assert entry.actor_type == "platform_admin" and entry.actor_name == "root" and entry.ip == "127.0.0.1"
    assert "acme-admin" in [u.username for u in users.list_users(entry.tenant_id, role="admin")]


def test_creating_a_tenant_without_htmx_renders_the_whole_page(dashboard):
    response = dashboard.post("/admin/tenants/new", {"name": "Plain", "max_seats": "2"}, htmx=False)
    assert response.status_code == 200 and "<aside" in text_of(response) and KEY.search(text_of(response))


def test_an_invalid_tenant_comes_back_as_the_form_with_the_field_error(dashboard):
    response = dashboard.post("/admin/tenants/new", {"name": "  ", "max_seats": "3", "admin_password": "secret-pw-1"})
    assert response.status_code == 400
    page = text_of(response)
    assert page.lstrip().startswith('<form id="tenant-create-form"')  # the fragment, not a page
    assert 'aria-invalid="true"' in page and "Tenant name is required." in page
    assert "secret-pw-1" not in page

    response = dashboard.post("/admin/tenants/new", {"name": "Acme", "max_seats": "lots"})
    assert response.status_code == 400 and "Max seats must be a whole number." in text_of(response)
    assert 'value="Acme"' in text_of(response)  # what was typed stays
    response = dashboard.post("/admin/tenants/new", {"name": "Acme", "max_seats": "2", "admin_username": "boss"})
    assert response.status_code == 400 and "Give both admin_username and admin_password" in text_of(response)
    assert "Acme" not in text_of(dashboard.get("/admin/tenants"))


def test_a_nul_character_in_a_form_or_a_search_is_refused_not_a_server_error(dashboard):
    """PostgreSQL cannot store U+0000; the dashboard refuses it like the API does, before any service runs."""
    response = dashboard.post("/admin/tenants/new", {"name": "Acme\u0000", "max_seats": "3"})
    assert response.status_code == 400 and "NUL" in text_of(response)
    response = dashboard.get("/admin/tenants?q=Acme%00", htmx=True)
    assert response.status_code == 400 and "NUL" in text_of(response)
    assert "Acme" not in text_of(dashboard.get("/admin/tenants"))


def test_tenant_list_searches_and_pages_with_a_fragment_for_htmx(dashboard, make):
    for n in range(23):
        make.tenant(f"Studio {n:02d}")
    make.tenant("Acme Corp", contact_email="boss@acme.test")

    page = dashboard.get("/admin/tenants")
    assert page.status_code == 200 and "<aside" in text_of(page) and "HX-Request" in page.headers["Vary"]
    assert 'hx-trigger="input changed delay:300ms, search"' in text_of(page)
    assert "1–20 of 24" in text_of(page) and 'href="/admin/tenants?page=2"' in text_of(page)

    fragment = dashboard.get("/admin/tenants?q=acme", htmx=True)
    assert fragment.status_code == 200 and "HX-Request" in fragment.headers["Vary"]
    assert text_of(fragment).lstrip().startswith('<div id="tenant-table">')
    assert "Acme Corp" in text_of(fragment) and "Studio" not in text_of(fragment)

    second = text_of(dashboard.get("/admin/tenants?page=2", htmx=True))
    assert "21–24 of 24" in second and second.count("<tr>") == 1 + 4
    # A history restore after a cache miss wants the whole page even though htmx asks.
    restore = dashboard.get("/admin/tenants", htmx=True, headers={"HX-History-Restore-Request": "true"})
    assert "<aside" in text_of(restore)
    assert "No tenant matches" in text_of(dashboard.get("/admin/tenants?q=zzz", htmx=True))


def test_editing_and_deactivating_a_tenant_is_audited(dashboard, make, client):
    acme = make.tenant("Acme")
    url = f"/admin/tenants/{acme.tenant.id}"
    response = dashboard.post(f"{url}/edit", {"name": "Acme Ltd", "contact_email": "ops@acme.test",
                                             "max_seats": "9", "require_device": "on"})
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "tenant-changed"
    assert text_of(response).lstrip().startswith('<section id="tenant-info"') and "Acme Ltd" in text_of(response)
    entry = one(audit_entries(action="tenant.update"))
    assert entry.changes["max_seats"] == [5, 9] and entry.changes["name"] == ["Acme", "Acme Ltd"]

    response = dashboard.post(f"{url}/edit", {"name": "Acme Ltd", "max_seats": "-1"})
    assert response.status_code == 400 and "max_seats must be between" in text_of(response)

    response = dashboard.post(f"{url}/active", {"active": "0"})
    assert response.status_code == 200 and "Reactivate tenant" in text_of(response)
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {acme.api_key_plaintext}"}).status_code == 401
    assert len(audit_entries(action="tenant.deactivate")) == 1
    dashboard.post(f"{url}/active", {"active": "1"})
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {acme.api_key_plaintext}"}).status_code == 200


def test_adding_members_up_to_the_seat_limit_then_the_form_says_why_not(dashboard, make):
    acme = make.tenant("Acme", max_seats=1)
    url = f"/admin/tenants/{acme.tenant.id}/members"
    response = dashboard.post(url, {"username": "alice", "password": PASSWORD, "nickname": "Alice", "role": "member"})
    assert response.status_code == 200 and "Added alice." in text_of(response)
    assert "Seats used: <strong>1 / 1</strong>" in text_of(response)

    response = dashboard.post(url, {"username": "bob", "password": PASSWORD, "role": "member"})
    assert response.status_code == 409
    fragment = text_of(response)
    assert fragment.lstrip().startswith('<section id="tenant-members"')
    assert "All 1 seats are in use" in fragment and 'value="bob"' in fragment and PASSWORD not in fragment
    # Tenant admins hold no seat.
    response = dashboard.post(url, {"username": "boss", "password": PASSWORD, "role": "admin"})
    assert response.status_code == 200 and "Added boss." in text_of(response)

    response = dashboard.post(url, {"username": "carol", "password": "short", "role": "member"})
    assert response.status_code == 400 and "at least 8 characters" in text_of(response)
    response = dashboard.post(url, {"username": "alice", "password": PASSWORD, "role": "member"})
    assert response.status_code == 409 and "already taken" in text_of(response)
    assert [e.changes["username"] for e in audit_entries(action="user.create")] == ["alice", "boss"]


def test_deactivating_a_member_and_resetting_a_password_end_their_sessions(dashboard, make, client):
    acme = make.tenant("Acme", max_seats=1)
    alice = make.user(acme, "alice")
    base = f"/admin/tenants/{acme.tenant.id}/members/{alice.id}"

    headers = make.auth(acme, alice)
    response = dashboard.post(f"{base}/password", {"password": "new-password-1"})
    assert response.status_code == 200 and "New password set for alice" in text_of(response)
    assert_error(client.get("/api/v1/me", headers=headers), 401)
    headers = make.auth(acme, alice, password="new-password-1")

    response = dashboard.post(f"{base}/active", {"active": "0"})
    assert response.status_code == 200 and "Deactivated alice" in text_of(response)
    assert "Seats used: <strong>0 / 1</strong>" in text_of(response)
    assert_error(client.get("/api/v1/me", headers=headers), 401)

    bob = make.user(acme, "bob")  # takes the freed seat
    response = dashboard.post(f"{base}/active", {"active": "1"})
    assert response.status_code == 409 and "seats are in use" in text_of(response)
    dashboard.post(f"/admin/tenants/{acme.tenant.id}/members/{bob.id}/active", {"active": "0"})
    assert dashboard.post(f"{base}/active", {"active": "1"}).status_code == 200

    response = dashboard.post(f"{base}/password", {"password": "short"})
    assert response.status_code == 400 and "at least 8 characters" in text_of(response)
    audited = audit_entries(action="user.update", target_id=str(alice.id))
    assert {"password": "changed"} in [e.changes for e in audited]
    assert all("new-password-1" not in str(e.changes) for e in audited)


def test_keys_are_created_shown_once_and_revoked(dashboard, make, client):
    acme = make.tenant("Acme")
    url = f"/admin/tenants/{acme.tenant.id}/keys"
    response = dashboard.post(url, {"name": "ci", "mode": "test", "scopes": ["generate", "admin"]})
    assert response.status_code == 200 and "it will not be shown again" in text_of(response)
    raw = KEY.search(text_of(response)).group(0)
    assert raw.startswith("wk_test_")
    assert client.get("/api/v1/me", headers={"X-API-Key": raw}).status_code == 200
    assert raw not in text_of(dashboard.get(f"/admin/tenants/{acme.tenant.id}"))

    response = dashboard.post(url, {"name": "", "mode": "live"})
    assert response.status_code == 400 and "Key name must be 1 to 80 characters." in text_of(response)
    response = dashboard.post(url, {"name": "old", "mode": "live", "expires_at": "2001-01-01"})
    assert response.status_code == 400 and "expires_at must be in the future." in text_of(response)

    key = next(k for k in api_keys.list_keys(acme.tenant.id) if k.name == "ci")
    response = dashboard.post(f"{url}/{key.id}/revoke")
    assert response.status_code == 200 and f"Revoked {key.prefix}" in text_of(response)
    assert_error(client.get("/api/v1/me", headers={"X-API-Key": raw}), 401)
    assert len(audit_entries(action="api_key.revoke", target_id=str(key.id))) == 1


def test_a_bound_device_is_listed_and_unbound(dashboard, make, client):
    acme = make.tenant("Acme")
    alice = make.user(acme, "alice")
    make.login(acme, alice, device_id="phone-1")
    response = client.post("/api/v1/auth/login", json={"api_key": acme.api_key_plaintext, "username": "alice",
                                                       "password": PASSWORD, "device_id": "phone-2"})
    assert_error(response, 403, "device_not_bound")
    assert "phone-1" in text_of(dashboard.get(f"/admin/tenants/{acme.tenant.id}"))

    device = devices.list_devices(acme.tenant.id)[0]
    response = dashboard.post(f"/admin/tenants/{acme.tenant.id}/devices/{device.id}/unbind")
    assert response.status_code == 200 and "Device unbound" in text_of(response) and "phone-1" not in text_of(response)
    make.login(acme, alice, device_id="phone-2")
    assert one(audit_entries(action="device.unbind")).changes["fingerprint"] == "phone-1"


def test_one_tenants_page_cannot_act_on_another_tenants_objects(dashboard, make, client):
    acme, globex = make.tenant("Acme"), make.tenant("Globex")
    gus = make.user(globex, "gus")
    make.login(globex, gus, device_id="gus-phone")
    globex_device = devices.list_devices(globex.tenant.id)[0]
    globex_key = api_keys.list_keys(globex.tenant.id)[0]
    acme_url = f"/admin/tenants/{acme.tenant.id}"

    attempts = (
        (f"{acme_url}/members/{gus.id}/active", {"active": "0"}),
        (f"{acme_url}/members/{gus.id}/password", {"password": "taken-over-1"}),
        (f"{acme_url}/devices/{globex_device.id}/unbind", {}),
        (f"{acme_url}/keys/{globex_key.id}/revoke", {}),
        (f"{acme_url}/members/not-a-uuid/active", {"active": "0"}),
        ("/admin/tenants/not-a-uuid/keys", {"name": "x", "mode": "live"}),
    )
    for url, data in attempts:
        assert dashboard.post(url, data).status_code == 404, url
        assert dashboard.post(url, data, htmx=False).status_code == 404, url
    assert dashboard.get("/admin/tenants/00000000-0000-0000-0000-000000000000").status_code == 404

    assert users.list_users(globex.tenant.id)[0].is_active
    assert devices.list_devices(globex.tenant.id)
    assert client.get("/api/v1/me", headers={"X-API-Key": globex.api_key_plaintext}).status_code == 200
    make.login(globex, gus, device_id="gus-phone")  # password unchanged
    assert len(audit_entries(actor_type="platform_admin")) == 0
