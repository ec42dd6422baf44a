"""Credits in the dashboard: a tenant's balance, recharge (idempotent per rendered form) and
adjustment, the ledger with filters, cursor pages and a streamed CSV, the platform's billing
overview and the seat price."""
import csv
import io
import re
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.billing import accounts as billing
from app.billing import ledger
from app.core.transaction import atomic
from app.extensions import db
from app.models import LedgerEntry, utcnow
from tests.admin.conftest import audit_entries, text_of
from tests.conftest import TEST_ACTOR

IDEMPOTENCY_FIELD = re.compile(r'name="idempotency_key" value="([^"]+)"')


@pytest.fixture
def acme(make):
    return make.tenant("Acme Studio")


def url(created, path: str = "") -> str:
    return f"/admin/tenants/{created.tenant.id}{path}"


def form_key(response) -> str:
    return IDEMPOTENCY_FIELD.search(text_of(response)).group(1)


def account(response) -> dict:
    return {name: int(value.replace(",", "")) for name, value in
            re.findall(r'data-account="(\w+)">([\d,]+)<', text_of(response))}


def ledger_rows(response) -> list[tuple[str, str]]:
    """(type, signed amount) of each ledger row shown, newest first."""
    return re.findall(r'<tr data-entry="[^"]+" data-type="(\w+)">.*?<td class="num amount \w+">([^<]+)</td>',
                      text_of(response), re.S)


def entries(created) -> list[LedgerEntry]:
    return list(db.session.scalars(sa.select(LedgerEntry).where(LedgerEntry.tenant_id == created.tenant.id)
                                   .order_by(LedgerEntry.created_at)))


def recharge_many(created, count: int, description: str = "Top-up"):
    with atomic():
        for n in range(count):
            ledger.credit(created.tenant.id, "RECHARGE", n + 1, TEST_ACTOR, description=f"{description} {n + 1}")


def test_the_tenant_page_shows_the_balance_and_a_fresh_recharge_key_per_render(dashboard, acme):
    first = dashboard.get(url(acme))
    page = text_of(first)
    assert first.status_code == 200 and "Balance &amp; transactions" in page
    assert account(first) == {"balance": 0, "held": 0, "available": 0}
    assert "No transactions yet." in page and f'href="{url(acme, "/ledger.csv")}"' in page
    key = form_key(first)
    assert uuid.UUID(key) and form_key(dashboard.get(url(acme))) != key


def test_recharging_adds_credits_shows_the_entry_and_is_audited(dashboard, acme):
    page = dashboard.get(url(acme))
    key = form_key(page)
    response = dashboard.post(url(acme, "/recharge"), {"amount": "1500", "description": "Invoice 2025-014",
                                                       "idempotency_key": key})
    assert response.status_code == 200
    assert text_of(response).lstrip().startswith('<section id="tenant-credits"')
    assert "Recharged 1,500 credits. Balance is now 1,500." in text_of(response)
    assert account(response) == {"balance": 1500, "held": 0, "available": 1500}
    assert ledger_rows(response) == [("RECHARGE", "+1,500")] and "Invoice 2025-014" in text_of(response)
    assert form_key(response) != key  # the next recharge is a new one

    entry = audit_entries(action="credits.recharge")[-1]
    assert entry.actor_type == "platform_admin" and entry.actor_name == "root" and entry.ip == "127.0.0.1"
    assert entry.tenant_id == acme.tenant.id and entry.changes["amount"] == 1500
    assert [(e.type, e.amount, e.actor_name) for e in entries(acme)] == [("RECHARGE", 1500, "root")]
    assert ledger.verify() == []


@pytest.mark.parametrize("htmx", [True, False])
def test_the_same_recharge_form_posted_twice_recharges_once(dashboard, acme, htmx):
    key = form_key(dashboard.get(url(acme)))
    form = {"amount": "700", "description": "Invoice 7", "idempotency_key": key}
    first = dashboard.post(url(acme, "/recharge"), form, htmx=htmx)
    again = dashboard.post(url(acme, "/recharge"), form, htmx=htmx)
    assert first.status_code == again.status_code == 200
    assert "was already recorded; it was not applied twice" in text_of(again)
    assert account(again)["balance"] == 700 and len(ledger_rows(again)) == 1
    if not htmx:
        assert "<aside" in text_of(again)  # a resubmitted plain form gets the whole page back
    assert [e.amount for e in entries(acme)] == [700]
    assert len(audit_entries(action="credits.recharge")) == 1
    assert ledger.verify() == []

    # The same key with other values is refused, and the form offers a new key for a deliberate retry.
    changed = dashboard.post(url(acme, "/recharge"), {**form, "amount": "900"})
    assert changed.status_code == 422 and "already used for a different recharge" in text_of(changed)
    assert form_key(changed) != key and [e.amount for e in entries(acme)] == [700]


@pytest.mark.parametrize("amount, message", [
    ("lots", "Amount must be a whole number."),
    ("0", "Amount must be a whole number of credits from 1 to"),
    ("-5", "Amount must be a whole number of credits from 1 to"),
    ("10000001", "Amount must be a whole number of credits from 1 to 10,000,000."),
])
def test_an_invalid_recharge_comes_back_with_the_error_and_writes_nothing(dashboard, acme, amount, message):
    key = form_key(dashboard.get(url(acme)))
    form = {"amount": amount, "description": "Invoice 8", "idempotency_key": key}
    response = dashboard.post(url(acme, "/recharge"), form)
    page = text_of(response)
    assert response.status_code == 400
    assert 'aria-describedby="recharge-amount-error"' in page and message in page
    assert 'value="Invoice 8"' in page and form_key(response) == key  # typed values and the key stay
    assert entries(acme) == [] and audit_entries(action="credits.recharge") == []
    # Nothing was recorded under the key, so the corrected form goes through.
    fixed = dashboard.post(url(acme, "/recharge"), {**form, "amount": "10"})
    assert fixed.status_code == 200 and account(fixed)["balance"] == 10


def test_recharge_needs_the_csrf_token(dashboard, acme):
    response = dashboard.post(url(acme, "/recharge"), {"amount": "10"}, csrf=False)
    assert response.status_code == 400 and entries(acme) == []
    response = dashboard.post(url(acme, "/adjust"), {"amount": "10", "reason": "x"}, csrf=False, htmx=False)
    assert response.status_code == 400 and entries(acme) == []


def test_adjustments_go_both_ways_with_a_reason_never_below_zero_available(dashboard, acme):
    billing.recharge(acme.tenant.id, 100, TEST_ACTOR)
    with atomic():
        ledger.hold(acme.tenant.id, 30)

    up = dashboard.post(url(acme, "/adjust"), {"amount": "25", "reason": "Goodwill for the outage"})
    assert up.status_code == 200 and "Adjusted by +25 credits. Balance is now 125." in text_of(up)
    down = dashboard.post(url(acme, "/adjust"), {"amount": "-45", "reason": "Duplicate recharge"})
    assert down.status_code == 200 and account(down) == {"balance": 80, "held": 30, "available": 50}
    assert ledger_rows(down)[:2] == [("ADJUST", "-45"), ("ADJUST", "+25")]

    too_much = dashboard.post(url(acme, "/adjust"), {"amount": "-51", "reason": "Oops"})
    assert too_much.status_code == 400
    assert 'aria-describedby="adjust-amount-error"' in text_of(too_much)
    assert "Cannot take 51 credits: only 50 are available." in text_of(too_much)
    no_reason = dashboard.post(url(acme, "/adjust"), {"amount": "5", "reason": "  "})
    assert no_reason.status_code == 400 and 'aria-describedby="adjust-reason-error"' in text_of(no_reason)
    assert "A reason is required for an adjustment." in text_of(no_reason) and 'value="5"' in text_of(no_reason)
    zero = dashboard.post(url(acme, "/adjust"), {"amount": "0", "reason": "Nothing"})
    assert zero.status_code == 400 and "non-zero whole number" in text_of(zero)

    audits = audit_entries(action="credits.adjust")
    assert [(a.changes["amount"], a.changes["reason"], a.actor_name) for a in audits] == [
        (25, "Goodwill for the outage", "root"), (-45, "Duplicate recharge", "root")]
    assert ledger.account(acme.tenant.id).available == 50 and ledger.verify() == []


def test_the_ledger_filters_by_type_and_date(dashboard, acme):
    billing.recharge(acme.tenant.id, 100, TEST_ACTOR)
    billing.adjust(acme.tenant.id, -10, "Correction", TEST_ACTOR)
    billing.recharge(acme.tenant.id, 50, TEST_ACTOR)
    today = utcnow().date()

    fragment = dashboard.get(url(acme, "/ledger?type=ADJUST"), htmx=True)
    assert fragment.status_code == 200 and "HX-Request" in fragment.headers["Vary"]
    assert text_of(fragment).lstrip().startswith('<div id="tenant-ledger">')
    assert ledger_rows(fragment) == [("ADJUST", "-10")]
    assert f'href="{url(acme, "/ledger.csv")}?type=ADJUST"' in text_of(fragment)  # the export follows the filter

    assert [t for t, _ in ledger_rows(dashboard.get(url(acme, f"/ledger?date_from={today}&date_to={today}"),
                                                    htmx=True))] == ["RECHARGE", "ADJUST", "RECHARGE"]
    yesterday = today - timedelta(days=1)
    empty = dashboard.get(url(acme, f"/ledger?date_to={yesterday}"), htmx=True)
    assert ledger_rows(empty) == [] and "No transactions here." in text_of(empty)

    page = dashboard.get(url(acme, "/ledger?type=RECHARGE"))
    assert "<aside" in text_of(page) and '<option value="RECHARGE" selected>' in text_of(page)
    assert ledger_rows(page) == [("RECHARGE", "+50"), ("RECHARGE", "+100")]

    for query, message in (("date_from=yesterday", "From must be a date (YYYY-MM-DD)."),
                           ("type=BONUS", "type must be one of RECHARGE"), ("cursor=zzz", "Invalid cursor.")):
        bad = dashboard.get(url(acme, f"/ledger?{query}"), htmx=True)
        assert bad.status_code == 400 and message in text_of(bad) and ledger_rows(bad) == []


def test_older_entries_page_by_cursor(dashboard, acme):
    recharge_many(acme, 30)
    first = dashboard.get(url(acme))
    rows = ledger_rows(first)
    assert len(rows) == 25 and rows[0] == ("RECHARGE", "+30")
    older = re.search(r'href="([^"]*/ledger\?cursor=[^"]+)"[^>]*rel="next">Older', text_of(first)).group(1)
    second = dashboard.get(older.replace("&amp;", "&"), htmx=True)
    assert [amount for _, amount in ledger_rows(second)] == ["+5", "+4", "+3", "+2", "+1"]
    assert "Older →" not in text_of(second) and "← Newest" in text_of(second)


def csv_rows(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text_of(response))))


def test_the_csv_export_streams_the_whole_filtered_ledger(dashboard, acme):
    recharge_many(acme, 230)  # more than one batch of list_entries
    billing.adjust(acme.tenant.id, -7, "=HYPERLINK(\"http://evil.test\")", TEST_ACTOR)
    response = dashboard.client.get(url(acme, "/ledger.csv"))  # not dashboard.get, which reads the body
    assert response.status_code == 200 and "Content-Length" not in response.headers  # streamed
    assert response.mimetype == "text/csv" and response.headers["Cache-Control"] == "no-store"
    assert re.fullmatch(r'attachment; filename="ledger-acme-studio-\d{8}\.csv"',
                        response.headers["Content-Disposition"])
    rows = csv_rows(response)
    assert len(rows) == 231 and len({row["id"] for row in rows}) == 231
    assert list(rows[0]) == ["created_at", "type", "amount", "balance_after", "description", "actor_type",
                             "actor_name", "reference", "id"]
    assert (rows[0]["type"], rows[0]["amount"]) == ("ADJUST", "-7")
    assert rows[0]["description"] == "'=HYPERLINK(\"http://evil.test\")"  # never a live formula
    assert [int(row["amount"]) for row in rows[1:]] == list(range(230, 0, -1))
    assert sum(int(row["amount"]) for row in rows) == ledger.account(acme.tenant.id).balance

    only_adjust = csv_rows(dashboard.get(url(acme, "/ledger.csv?type=ADJUST")))
    assert [row["amount"] for row in only_adjust] == ["-7"]
    tomorrow = utcnow().date() + timedelta(days=1)
    assert csv_rows(dashboard.get(url(acme, f"/ledger.csv?date_from={tomorrow}"))) == []
    bad = dashboard.client.get(url(acme, "/ledger.csv?date_to=soon"))
    assert bad.status_code == 400 and bad.mimetype == "text/html" and "To must be a date" in text_of(bad)


def test_unknown_tenants_are_404_everywhere_in_billing(dashboard, make):
    make.tenant("Acme")
    for tenant_id in (str(uuid.uuid4()), "not-a-uuid"):
        base = f"/admin/tenants/{tenant_id}"
        for htmx in (True, False):
            assert dashboard.get(f"{base}/ledger", htmx=htmx).status_code == 404
            assert dashboard.post(f"{base}/recharge", {"amount": "5", "idempotency_key": "k"},
                                  htmx=htmx).status_code == 404
            assert dashboard.post(f"{base}/adjust", {"amount": "5", "reason": "r"}, htmx=htmx).status_code == 404
        assert dashboard.get(f"{base}/ledger.csv").status_code == 404
    assert db.session.scalar(sa.select(sa.func.count()).select_from(LedgerEntry)) == 0


def overview(response) -> tuple[dict, list[tuple[str, dict]]]:
    page = text_of(response)

    def number(text: str) -> int:
        return int(text.replace(",", "").replace("+", ""))

    totals = {name: number(value) for name, value in re.findall(r'data-total="(\w+)">([-+\d,]+)<', page)}
    rows = []
    for name, body in re.findall(r'<tr data-tenant="([^"]+)">(.*?)</tr>', page, re.S):
        rows.append((name, {col: number(value) for col, value in
                            re.findall(r'data-col="(\w+)">(?:<strong>)?([-+\d,]+)<', body)}))
    return totals, rows


def spend(created, held: int, charged: int):
    with atomic():
        hold = ledger.hold(created.tenant.id, held)
    with atomic():
        ledger.settle(hold.id, charged, TEST_ACTOR, description="generation")


def test_the_billing_overview_sums_the_period_per_tenant_and_platform_wide(dashboard, make):
    acme, globex, _idle = make.tenant("Acme"), make.tenant("Globex"), make.tenant("Idle")
    billing.set_seat_price(100, TEST_ACTOR)
    billing.recharge(acme.tenant.id, 1000, TEST_ACTOR)
    spend(acme, 300, 250)
    billing.adjust(acme.tenant.id, -50, "Correction", TEST_ACTOR)
    billing.purchase_seats(acme.tenant.id, 2, TEST_ACTOR)
    with atomic():
        ledger.credit(acme.tenant.id, "REFUND", 30, TEST_ACTOR, description="failed job")
        ledger.hold(acme.tenant.id, 100)  # still running: held, not consumed
    billing.recharge(globex.tenant.id, 500, TEST_ACTOR)
    spend(globex, 400, 400)
    # An old recharge, outside the default 30 days.
    old = str(billing.recharge(acme.tenant.id, 70, TEST_ACTOR).entry.id)
    db.session.execute(sa.update(LedgerEntry).where(LedgerEntry.id == uuid.UUID(old))
                       .values(created_at=utcnow() - timedelta(days=60)))
    db.session.commit()
    assert ledger.verify() == []

    response = dashboard.get("/admin/billing")
    assert response.status_code == 200 and "HX-Request" in response.headers["Vary"]
    assert '<a href="/admin/billing" aria-current="page">Billing</a>' in text_of(response)
    totals, rows = overview(response)
    assert totals == {"recharged": 1500, "consumed": 650, "refunded": 30, "adjusted": -50, "seat_purchases": 200,
                      "held": 100}
    assert rows == [  # most consumption first; a tenant with nothing moved is left out
        ("Globex", {"consumed": 400, "recharged": 500, "refunded": 0, "adjusted": 0, "seat_purchases": 0,
                    "storage": 0, "held": 0}),
        ("Acme", {"consumed": 250, "recharged": 1000, "refunded": 30, "adjusted": -50, "seat_purchases": 200,
                  "storage": 0, "held": 100})]

    today = utcnow().date()
    wider = dashboard.get(f"/admin/billing?date_from={today - timedelta(days=61)}&date_to={today}", htmx=True)
    assert text_of(wider).lstrip().startswith('<div id="billing-overview">')
    assert overview(wider)[0]["recharged"] == 1570 and "62 days" in text_of(wider)

    past = dashboard.get(f"/admin/billing?date_from={today - timedelta(days=61)}&date_to={today - timedelta(days=59)}",
                         htmx=True)
    totals, rows = overview(past)
    assert totals["recharged"] == 70 and totals["held"] == 100  # held is "right now", whatever the period
    assert [name for name, _ in rows] == ["Acme"]


def test_the_billing_overview_refuses_a_backwards_or_malformed_period(dashboard):
    backwards = dashboard.get("/admin/billing?date_from=2025-05-10&date_to=2025-05-01", htmx=True)
    assert backwards.status_code == 400 and "The start date must not be after the end date." in text_of(backwards)
    malformed = dashboard.get("/admin/billing?date_to=May", htmx=True)
    assert malformed.status_code == 400 and "To must be a date (YYYY-MM-DD)." in text_of(malformed)
    empty = dashboard.get("/admin/billing?date_from=2020-01-01&date_to=2020-01-31")
    assert empty.status_code == 200 and "No credits moved in this period." in text_of(empty)


def test_the_seat_price_is_set_from_the_settings_page(dashboard, acme):
    page = dashboard.get("/admin/settings")
    assert page.status_code == 200 and 'data-seat-price>1,000<' in text_of(page)
    assert 'data-recharge-max>10,000,000<' in text_of(page)

    saved = dashboard.post("/admin/settings/seat-price", {"credits": "250"})
    assert saved.status_code == 200 and "Seat price set to 250 credits." in text_of(saved)
    assert text_of(saved).lstrip().startswith('<section id="seat-price"') and billing.seat_price() == 250
    entry = audit_entries(action="settings.seat_price")[-1]
    assert entry.actor_name == "root" and entry.changes["credits"] == [1000, 250]

    for value, message in (("free", "Seat price must be a whole number."),
                           ("-1", "Seat price must be a whole number of credits from 0 to 10,000,000.")):
        bad = dashboard.post("/admin/settings/seat-price", {"credits": value})
        assert bad.status_code == 400 and message in text_of(bad)
        assert 'aria-describedby="seat-credits-error"' in text_of(bad) and f'value="{value}"' in text_of(bad)
    assert billing.seat_price() == 250 and len(audit_entries(action="settings.seat_price")) == 1
