from app.identity import admins
from tests.admin.conftest import Dashboard, text_of
from tests.conftest import PASSWORD, TEST_ACTOR


def test_sign_in_lands_on_the_page_asked_for_with_a_timed_session(client, root):
    dashboard = Dashboard(client)
    response = dashboard.client.get("/admin/tenants?q=acme")
    assert response.status_code == 302
    assert response.location == "/admin/login?next=/admin/tenants?q%3Dacme"

    response = dashboard.sign_in("root", next_url="/admin/tenants?q=acme")
    assert response.status_code == 302 and response.location == "/admin/tenants?q=acme"
    cookie = response.headers["Set-Cookie"]
    assert "Expires=" in cookie and "HttpOnly" in cookie  # permanent session: ends after ADMIN_SESSION_MINUTES
    page = dashboard.get("/admin/")
    assert page.status_code == 200 and "Signed in as <strong>root</strong>" in text_of(page)


def test_next_cannot_send_the_admin_off_site(client, root):
    for target in ("https://evil.example/", "//evil.example/admin", "/api/v1/me", "/admin\\@evil", "/administrator"):
        dashboard = Dashboard(client)
        client.delete_cookie("session")
        assert dashboard.sign_in("root", next_url=target).location == "/admin/"


def test_wrong_password_unknown_user_and_inactive_admin_get_one_message(client, make, root):
    retired = make.platform_admin("retired")
    admins.set_active(retired.id, TEST_ACTOR, False)
    dashboard = Dashboard(client)
    pages = []
    for username, password in (("root", "wrong-password"), ("nobody", PASSWORD), ("retired", PASSWORD)):
        response = dashboard.sign_in(username, password)
        assert response.status_code == 401
        pages.append(text_of(response))
        assert "Invalid username or password." in pages[-1]
        assert password not in pages[-1]
    assert dashboard.get("/admin/").status_code == 302  # still signed out


def test_repeated_failures_are_throttled_with_the_wait_shown(client, root, app):
    dashboard = Dashboard(client)
    for _ in range(app.config["LOGIN_FAILURES_PER_USER"]):
        assert dashboard.sign_in("root", "wrong-password").status_code == 401
    response = dashboard.sign_in("root", PASSWORD)  # even the right password waits now
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert f"Too many attempts, try again in {response.headers['Retry-After']} s." in text_of(response)


def test_every_page_needs_a_session(client):
    for url in ("/admin/", "/admin/tenants", "/admin/tenants/new", "/admin/admins", "/admin/audit",
                "/admin/tenants/00000000-0000-0000-0000-000000000000"):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.location.startswith("/admin/login?next=")


def test_an_htmx_request_without_a_session_gets_hx_redirect_not_a_login_form(client):
    response = client.get("/admin/tenants?q=ac", headers={
        "HX-Request": "true", "HX-Current-URL": "http://localhost/admin/tenants?q=a"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/admin/login?next=/admin/tenants?q%3Da"
    assert "<form" not in text_of(response)


def test_an_expired_session_answers_htmx_gets_and_posts_with_hx_redirect(dashboard, make):
    acme = make.tenant("Acme")
    assert dashboard.get("/admin/tenants", htmx=True).status_code == 200
    dashboard.client.delete_cookie("session")  # what the browser does when the session times out

    response = dashboard.get("/admin/tenants?q=ac", htmx=True)
    assert response.status_code == 401 and response.headers["HX-Redirect"].startswith("/admin/login")
    # A POST loses its CSRF token with the session; that is an ended session too, not a 400 in a cell.
    response = dashboard.post(f"/admin/tenants/{acme.tenant.id}/keys", {"name": "late", "mode": "live"},
                              headers={"HX-Current-URL": f"http://localhost/admin/tenants/{acme.tenant.id}"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == f"/admin/login?next=/admin/tenants/{acme.tenant.id}"


def test_a_session_older_than_its_lifetime_is_refused(dashboard, app):
    import time
    app.config["PERMANENT_SESSION_LIFETIME"] = 1
    time.sleep(2.1)
    response = dashboard.get("/admin/", htmx=True)
    assert response.status_code == 401 and "HX-Redirect" in response.headers


def test_deactivating_an_admin_ends_their_session(dashboard, make):
    dashboard.client.delete_cookie("session")
    other = make.platform_admin("other")
    assert dashboard.sign_in("other").status_code == 302
    admins.set_active(other.id, TEST_ACTOR, False)
    response = dashboard.get("/admin/")
    assert response.status_code == 302 and response.location.startswith("/admin/login")


def test_a_form_without_the_csrf_token_is_refused(dashboard, make):
    acme = make.tenant("Acme")
    response = dashboard.post("/admin/tenants/new", {"name": "Forged", "max_seats": "5"}, csrf=False)
    assert response.status_code == 400
    response = dashboard.post(f"/admin/tenants/{acme.tenant.id}/keys", {"name": "forged", "mode": "live"},
                              htmx=False, csrf=False)
    assert response.status_code == 400
    response = dashboard.post("/admin/tenants/new", {"name": "Forged", "max_seats": "5"},
                              headers={"X-CSRFToken": "not-the-token"})
    assert response.status_code == 400
    listing = text_of(dashboard.get("/admin/tenants"))
    assert "Forged" not in listing
    assert "forged" not in text_of(dashboard.get(f"/admin/tenants/{acme.tenant.id}"))


def test_sign_in_itself_needs_the_csrf_token(client, root):
    dashboard = Dashboard(client)
    response = dashboard.post("/admin/login", {"username": "root", "password": PASSWORD}, htmx=False, csrf=False)
    assert response.status_code == 400 and "expired" in text_of(response)


def test_sign_out_is_a_post_and_ends_the_session(dashboard):
    assert dashboard.client.get("/admin/logout").status_code == 405
    response = dashboard.post("/admin/logout", htmx=False)
    assert response.status_code == 302 and response.location == "/admin/login"
    assert dashboard.get("/admin/").status_code == 302
