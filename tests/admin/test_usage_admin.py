"""A tenant's Usage section: the per-day SVG chart and the per-model table for a chosen period, with
numbers that match the usage written by real generations (and, for earlier days, rollup rows)."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from app.extensions import db
from app.models import UsageDaily, utcnow
from tests.admin.conftest import text_of
from tests.admin.test_generations_admin import CHAT, IMAGE, generate_chat, generate_image, shop  # noqa: F401


@pytest.fixture
def acme(shop):  # noqa: F811
    return shop[0]


def url(created, query: str = "") -> str:
    return f"/admin/tenants/{created.tenant.id}/usage{query}"


def bars(response) -> dict[str, dict]:
    """Each chart bar's day → its numbers, as drawn."""
    found = re.findall(r'<rect class="bar[^"]*"[^>]*height="([\d.]+)"\s+data-day="([\d-]+)" data-credits="(\d+)" '
                       r'data-requests="(\d+)"', text_of(response))
    return {day: {"height": float(height), "credits": int(credits), "requests": int(requests)}
            for height, day, credits, requests in found}


def model_rows(response) -> dict[str, tuple[int, int, int]]:
    found = re.findall(r'<tr data-usage-model="([^"]+)">.*?data-col="requests">([\d,]+)<.*?data-col="failures">([\d,]+)<'
                       r'.*?data-col="credits"><strong>([\d,]+)<', text_of(response), re.S)
    return {model: tuple(int(n.replace(",", "")) for n in numbers) for model, *numbers in found}


def totals(response) -> dict[str, int]:
    return {name: int(value.replace(",", "")) for name, value in
            re.findall(r'data-usage-total="(\w+)">([\d,]+)<', text_of(response))}


def past_usage(created, days_ago: int, *, model: str, requests: int, credits: int, failures: int = 0):
    """A rollup row for an earlier day: the API only writes today's, and the chart reads rollups."""
    db.session.add(UsageDaily(tenant_id=created.tenant.id, day=utcnow().date() - timedelta(days=days_ago),
                              model=model, caller="api", is_test=False, kind="image", requests=requests,
                              failures=failures, credits=credits))
    db.session.commit()


def test_the_tenant_page_charts_each_day_and_tables_each_model(client, dashboard, acme):
    generate_image(client, acme, n=2)                      # 40
    generate_image(client, acme, prompt="x [sandbox:fail]")  # failure, 0
    generate_chat(client, acme)
    chat_credits = 1000 - 40 - db.session.get(type(acme.tenant), acme.tenant.id).balance
    past_usage(acme, 3, model=IMAGE, requests=5, credits=100)
    past_usage(acme, 40, model=IMAGE, requests=9, credits=999)  # outside the default 30 days

    page = dashboard.get(f"/admin/tenants/{acme.tenant.id}")
    assert page.status_code == 200 and 'id="tenant-usage"' in text_of(page)
    drawn = bars(page)
    today, three_ago = utcnow().date(), utcnow().date() - timedelta(days=3)
    assert len(drawn) == 30  # every day of the period, empty ones included
    assert drawn[today.isoformat()]["credits"] == 40 + chat_credits and drawn[today.isoformat()]["requests"] == 3
    assert drawn[three_ago.isoformat()] | {"height": 0} == {"credits": 100, "requests": 5, "height": 0}
    assert drawn[(today - timedelta(days=1)).isoformat()] == {"height": 0.0, "credits": 0, "requests": 0}
    tallest = max(drawn.values(), key=lambda b: b["credits"])
    assert tallest["credits"] == 100 and all(b["height"] <= tallest["height"] for b in drawn.values())
    assert model_rows(page) == {CHAT: (1, 0, chat_credits), IMAGE: (7, 1, 140)}
    assert totals(page) == {"requests": 8, "failures": 1, "credits": 140 + chat_credits}


def test_a_chosen_period_redraws_the_section(dashboard, acme):
    past_usage(acme, 40, model=IMAGE, requests=9, credits=999)
    start = (utcnow().date() - timedelta(days=45)).isoformat()
    end = (utcnow().date() - timedelta(days=39)).isoformat()
    fragment = dashboard.get(url(acme, f"?date_from={start}&date_to={end}"), htmx=True)
    assert fragment.status_code == 200
    assert text_of(fragment).lstrip().startswith('<section id="tenant-usage"')
    assert len(bars(fragment)) == 7 and totals(fragment)["credits"] == 999
    full = dashboard.get(url(acme, f"?date_from={start}&date_to={end}"))
    assert "<html" in text_of(full) and 'id="tenant-credits"' in text_of(full) and totals(full)["credits"] == 999

    week = dashboard.get(url(acme, "?date_from=" + (utcnow().date() - timedelta(days=6)).isoformat()), htmx=True)
    assert len(bars(week)) == 7 and totals(week)["credits"] == 0 and "No generations in this period." in text_of(week)


@pytest.mark.parametrize("query,message", [
    ("?date_from=2025-05-10&date_to=2025-05-01", "from must not be after to."),
    ("?date_from=2024-01-01&date_to=2025-06-01", "A range of at most 366 days."),
    ("?date_to=someday", "To must be a date (YYYY-MM-DD)."),
])
def test_a_bad_period_is_shown_beside_its_field(dashboard, acme, query, message):
    response = dashboard.get(url(acme, query), htmx=True)
    assert response.status_code == 400
    assert re.search(r'class="field-error" id="usage-date_(from|to)-error">' + re.escape(message), text_of(response))


def test_an_unknown_tenant_is_a_404(dashboard):
    assert dashboard.get("/admin/tenants/7b0c5a57-1d56-4c1c-9d1b-9b8a3a0f3f11/usage").status_code == 404
