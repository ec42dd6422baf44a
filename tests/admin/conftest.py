"""Dashboard fixtures: a test client that behaves like separate browser requests, a signed-in admin,
and a live server plus headless Chromium for the browser tests."""
from __future__ import annotations

import os
import re

import pytest

from app.extensions import db
from tests.conftest import PASSWORD, SeparateRequestsClient, make_app, require

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


class Dashboard:
    """A browser-like session on /admin: keeps the CSRF token of the last page it loaded."""

    def __init__(self, client):
        self.client = client
        self.csrf_token = None

    def get(self, url: str, *, htmx: bool = False, **kwargs):
        headers = kwargs.pop("headers", {})
        if htmx:
            headers = {"HX-Request": "true", **headers}
        response = self.client.get(url, headers=headers, **kwargs)
        found = CSRF_META.search(response.get_data(as_text=True))
        if found:
            self.csrf_token = found.group(1)
        return response

    def post(self, url: str, data: dict | None = None, *, htmx: bool = True, csrf: bool = True, **kwargs):
        """POST like the dashboard does: htmx sends the token as a header, a plain form as a field."""
        data = dict(data or {})
        headers = kwargs.pop("headers", {})
        if self.csrf_token is None and csrf:
            self.get("/admin/login")
        if htmx:
            headers = {"HX-Request": "true", **headers}
            if csrf:
                headers.setdefault("X-CSRFToken", self.csrf_token)
        elif csrf:
            data["csrf_token"] = self.csrf_token
        return self.client.post(url, data=data, headers=headers, **kwargs)

    def sign_in(self, username: str, password: str = PASSWORD, next_url: str | None = None):
        self.get("/admin/login")
        data = {"username": username, "password": password}
        if next_url:
            data["next"] = next_url
        response = self.post("/admin/login", data, htmx=False)
        if response.status_code == 302:
            self.get("/admin/")  # signing in starts a new session, with a new CSRF token
        return response


@pytest.fixture
def root(make):
    return make.platform_admin("root")


@pytest.fixture
def dashboard(client, root) -> Dashboard:
    dashboard = Dashboard(client)
    assert dashboard.sign_in("root").status_code == 302
    return dashboard


@pytest.fixture
def queued_dashboard(app, test_env, tmp_path, root) -> Dashboard:
    """A signed-in dashboard on an app (same database) whose jobs go to a real SQLite queue that no
    worker consumes: what is enqueued waits there, as it does while every worker is busy or down."""
    queued = make_app({**test_env, "JOBS_QUEUE": "sqlite", "JOBS_SQLITE_PATH": str(tmp_path / "jobs.db")},
                      tmp_path / "queued-instance")
    queued.test_client_class = SeparateRequestsClient
    with queued.app_context():
        dashboard = Dashboard(queued.test_client())
        assert dashboard.sign_in("root").status_code == 302
        yield dashboard
        db.session.remove()
        db.engine.dispose()


def text_of(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture(scope="session")
def chromium():
    if not os.path.exists(CHROMIUM):
        yield None
        return
    from playwright.sync_api import sync_playwright
    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture
def page(chromium, live_server):
    require(chromium is not None, "Chromium not installed (apt-get install chromium)")
    context = chromium.new_context(base_url=live_server, viewport={"width": 1360, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server)
    context.set_default_timeout(5000)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # hx-confirm prompts
    yield page
    context.close()


def audit_entries(**filter_by) -> list:
    """Audit entries matching `filter_by`, oldest first."""
    import sqlalchemy as sa

    from app.extensions import db
    from app.models import AuditLog
    return list(db.session.scalars(sa.select(AuditLog).filter_by(**filter_by).order_by(AuditLog.created_at)))
