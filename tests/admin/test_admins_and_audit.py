import re
from datetime import datetime, timedelta, timezone

from app.extensions import db
from app.identity import admins, audit
from app.identity.audit import Actor
from tests.admin.conftest import Dashboard, audit_entries, text_of
from tests.conftest import PASSWORD


def test_dashboard_home_counts_and_shows_the_latest_changes(dashboard, make):
    acme = make.tenant("Acme")
    make.tenant("Globex")
    make.user(acme, "alice")
    dashboard.post(f"/admin/tenants/{acme.tenant.id}/active", {"active": "0"})
    page = text_of(dashboard.get("/admin/"))
    stats = dict(re.findall(r'data-stat="(\w+)">(\d+)', page))
    assert stats == {"tenants": "2", "active_tenants": "1", "members": "1", "admins": "1"}
    assert "<code>tenant.deactivate</code>" in page and "root" in page


def test_the_nav_links_every_section(dashboard):
    page = text_of(dashboard.get("/admin/"))
    for href in ("/admin/", "/admin/tenants", "/admin/models", "/admin/billing", "/admin/generations",
                 "/admin/storage", "/admin/gateways", "/admin/admins", "/admin/audit", "/admin/settings"):
        assert f'href="{href}"' in page
    assert "nav-disabled" not in page
    assert 'href="/static/vendor/htmx.min.js"' not in page and 'src="/static/vendor/htmx.min.js"' in page
    assert "cdn" not in page.lower()


def test_admins_are_created_and_deactivated_but_not_yourself(dashboard, client, root):
    response = dashboard.post("/admin/admins", {"username": "ops", "password": PASSWORD})
    assert response.status_code == 200 and "Created admin ops." in text_of(response)
    assert text_of(response).lstrip().startswith('<section id="admins"')
    ops = admins.find_by_username("ops")

    response = dashboard.post("/admin/admins", {"username": "ops", "password": PASSWORD})
    assert response.status_code == 409 and "already exists" in text_of(response)
    response = dashboard.post("/admin/admins", {"username": "x", "password": "short"})
    assert response.status_code == 400 and 'aria-invalid="true"' in text_of(response)

    response = dashboard.post(f"/admin/admins/{ops.id}/active", {"active": "0"})
    assert response.status_code == 200 and "Deactivated ops." in text_of(response)
    other = Dashboard(client.application.test_client())
    assert other.sign_in("ops").status_code == 401

    response = dashboard.post(f"/admin/admins/{root.id}/active", {"active": "0"})
    assert response.status_code == 400 and "You cannot deactivate yourself." in text_of(response)
    assert dashboard.get("/admin/").status_code == 200
    assert dashboard.post("/admin/admins/not-an-id/active", {"active": "0"}).status_code == 404
    assert [e.action for e in audit_entries(actor_name="root")] == ["admin.create", "admin.deactivate"]


def test_audit_log_filters_by_action_tenant_actor_and_dates(dashboard, make):
    acme, globex = make.tenant("Acme"), make.tenant("Globex")
    dashboard.post(f"/admin/tenants/{acme.tenant.id}/members", {"username": "alice", "password": PASSWORD})
    dashboard.post(f"/admin/tenants/{globex.tenant.id}/keys", {"name": "ci", "mode": "test"})

    def rows(query: str) -> list[str]:
        response = dashboard.get(f"/admin/audit?{query}", htmx=True)
        assert response.status_code == 200 and text_of(response).lstrip().startswith('<div id="audit-table">')
        return re.findall(r"<code>([\w.]+)</code>", text_of(response))

    assert sorted(rows("")) == sorted(["tenant.create", "api_key.create"] * 2 + ["user.create", "api_key.create",
                                                                                "admin.create"])
    assert rows("action=user.create") == ["user.create"]
    assert rows("action=api_key.") == ["api_key.create"] * 3
    assert rows(f"tenant={globex.tenant.id}") == ["api_key.create", "api_key.create", "tenant.create"]
    assert set(rows("tenant=acm")) == {"user.create", "api_key.create", "tenant.create"}
    assert sorted(rows("actor=ROO")) == ["api_key.create", "user.create"]
    today = datetime.now(timezone.utc).date()
    assert len(rows(f"date_from={today}&date_to={today}")) == 7
    assert rows(f"date_from={today + timedelta(days=1)}") == []
    assert rows(f"date_to={today - timedelta(days=1)}") == []

    page = text_of(dashboard.get("/admin/audit?action=user.create"))
    assert '<option value="user.create" selected>' in page and "<aside" in page
    bad = dashboard.get("/admin/audit?date_from=yesterday", htmx=True)
    assert bad.status_code == 400 and "From must be a date (YYYY-MM-DD)." in text_of(bad)


def test_audit_log_pages_keep_their_filters(dashboard, make):
    acme = make.tenant("Acme")
    actor = Actor("platform_admin", "x", "bulk", None, "10.0.0.1")
    for n in range(60):
        audit.record(actor, "tenant.update", target_type="tenant", target_id=acme.tenant.id,
                     tenant_id=acme.tenant.id, changes={"max_seats": [n, n + 1]})
    db.session.commit()

    first = text_of(dashboard.get("/admin/audit?actor=bulk", htmx=True))
    assert "60 entries matching the filters" in first and "1–50 of 60" in first
    assert 'href="/admin/audit?page=2&amp;actor=bulk"' in first
    second = text_of(dashboard.get("/admin/audit?page=2&actor=bulk", htmx=True))
    assert "51–60 of 60" in second and second.count("<code>tenant.update</code>") == 10
    assert "<del>59</del> → <ins>60</ins>" in first and "10.0.0.1" in first


def test_an_unknown_admin_url_is_a_404_page_not_a_login_form(dashboard):
    assert dashboard.get("/admin/nothing-here").status_code == 404
