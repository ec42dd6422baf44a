"""The daily storage bill over simulated days: the service takes the day and its clock (`now`) as plain
arguments, so a month passes in a test. Storage is priced per GiB-month in marginal tiers over a 30-day
month and prorated per day; traffic per GiB downloaded through us; fractions of a credit are carried in
milli-credits; what a tenant cannot pay is owed, blocks its generations and is paid by its next recharge."""
from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from app.billing import ledger
from app.core.errors import InvalidInput
from app.core.transaction import atomic
from app.extensions import db
from app.identity import tenants
from app.jobs import SCHEDULE, resolve
from app.models import LedgerEntry, StoredFile, Tenant, TenantStorageUsage
from app.storage import billing, buckets
from app.storage import service as storage
from tests.conftest import TEST_ACTOR, assert_error, key_headers, require_postgres
from tests.fakes.s3_server import REGION, S3Server
from tests.integration.test_concurrency import _race
from tests.integration.test_storage import generation_for

GiB, MiB = 1024 ** 3, 1024 ** 2
IMAGE = {"model": "doubao-seedream-4-0-250828", "prompt": "a lighthouse"}
START = date(2025, 3, 1)  # any day that is over: the bill refuses a day that has not ended


def occupy(created, size_bytes: int) -> StoredFile:
    """The tenant stores `size_bytes` more, through the storage service (recorded, then confirmed and
    metered). No bytes are written: a month at 599 GiB does not fit on a test machine."""
    stored = storage.record_pending(tenant_id=created.tenant.id, generation_id=generation_for(created).id,
                                    caller="api", index=0, content_type="video/mp4", original_url=None)
    with atomic():
        stored.size_bytes = size_bytes
        storage.confirm(created.tenant.id, stored.generation_id)
    return stored


def bill(day: date, **kwargs) -> billing.BillRun:
    """The day's bill, run twenty minutes after it ended."""
    return billing.bill(day, now=datetime.combine(day + timedelta(days=1), time(0, 20), tzinfo=timezone.utc),
                        **kwargs)


def days(first: date, count: int) -> list[date]:
    return [first + timedelta(days=n) for n in range(count)]


def storage_entries(created) -> list[LedgerEntry]:
    return list(db.session.scalars(sa.select(LedgerEntry).where(LedgerEntry.tenant_id == created.tenant.id,
                                                                LedgerEntry.type == "STORAGE")
                                   .order_by(LedgerEntry.created_at, LedgerEntry.id)))


def tenant_row(created) -> Tenant:
    db.session.expire_all()
    return db.session.get(Tenant, created.tenant.id)


def usage_row(created, day: date) -> TenantStorageUsage:
    return db.session.scalar(sa.select(TenantStorageUsage).where(TenantStorageUsage.tenant_id == created.tenant.id,
                                                                 TenantStorageUsage.day == day))


def ledger_is_clean(runner) -> None:
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 0, result.output
    assert "every tenant balances" in result.output


def standard_rule():
    """The original design's rule: 10, 8 and 5 credits per GiB-month, bands ending at 100 and 500 GiB;
    5 credits per GiB downloaded."""
    return billing.create_rule(TEST_ACTOR, name="Standard", active=True)


def test_a_month_of_growing_storage_is_charged_by_the_hand_computed_tiers(app, make, runner):
    standard_rule()
    acme = make.funded_tenant("Acme", credits=10_000)
    occupy(acme, 90 * GiB)
    for day in days(START, 10):
        bill(day)
    occupy(acme, 110 * GiB)
    for day in days(START + timedelta(days=10), 10):
        bill(day)
    occupy(acme, 399 * GiB)
    for day in days(START + timedelta(days=20), 10):
        bill(day)

    # By hand, a month being 30 days:
    #   days 1-10 at 90 GiB: 90 x 10 = 900 credits a month = 30 a day                      -> 300
    #   days 11-20 at 200 GiB: 100 x 10 + 100 x 8 = 1,800 a month = 60 a day               -> 600
    #   days 21-30 at 599 GiB: 100 x 10 + 400 x 8 + 99 x 5 = 4,695 a month = 156.5 a day:
    #     156 (0.5 carried), then 157 (nothing carried), alternately: 5 x 156 + 5 x 157       -> 1,565
    #   the month: 300 + 600 + 1,565 = 2,465 credits
    expected = [30] * 10 + [60] * 10 + [156, 157] * 5
    entries = storage_entries(acme)
    assert [-entry.amount for entry in entries] == expected
    assert [entry.reference for entry in entries] == [f"storage:{day}" for day in days(START, 30)]
    assert sum(expected) == 2_465
    assert ledger.account(acme.tenant.id).balance == 10_000 - 2_465
    assert tenant_row(acme).storage_fee_carry_millicredits == 0

    day_21, day_22 = usage_row(acme, START + timedelta(days=20)), usage_row(acme, START + timedelta(days=21))
    assert (day_21.storage_bytes, day_21.storage_credits, day_21.traffic_credits) == (599 * GiB, 156, 0)
    assert (day_22.storage_credits, day_22.oss_mode) == (157, "PLATFORM")

    # Billing a day again, or the whole month again, charges nothing.
    again = bill(START + timedelta(days=14))
    assert (again.billed, again.already, again.credits) == (0, 1, 0)
    for day in days(START, 30):
        bill(day)
    result = runner.invoke(args=["storage", "bill", "--date", str(START + timedelta(days=29))])
    assert result.exit_code == 0, result.output
    assert "billed 0 tenant(s)" in result.output and "1 already billed" in result.output
    assert len(storage_entries(acme)) == 30
    assert ledger.account(acme.tenant.id).balance == 10_000 - 2_465
    ledger_is_clean(runner)


def test_a_tiny_tenant_is_charged_a_credit_only_once_its_fractions_make_one(app, make, runner):
    standard_rule()
    tiny = make.funded_tenant("Tiny", credits=100)
    occupy(tiny, 100 * MiB)

    # By hand: 100 MiB is 100/1024 GiB; at 10 credits a GiB-month that is 0.9765625 credits a month, or
    # 0.0325520... a day: 32 milli-credits (what is below a milli-credit is dropped). Carried day after
    # day: 32, 64, ..., 31 x 32 = 992, nothing charged; day 32 makes 1,024: 1 credit, 24 carried.
    for day in days(START, 31):
        bill(day)
    assert storage_entries(tiny) == []
    assert tenant_row(tiny).storage_fee_carry_millicredits == 992
    assert usage_row(tiny, START).storage_credits == 0

    bill(START + timedelta(days=31))
    assert [entry.amount for entry in storage_entries(tiny)] == [-1]
    assert tenant_row(tiny).storage_fee_carry_millicredits == 24
    assert ledger.account(tiny.tenant.id).balance == 99
    ledger_is_clean(runner)


def test_fees_a_tenant_cannot_pay_are_owed_block_generations_and_are_paid_by_its_next_recharge(
        app, client, make, runner):
    standard_rule()
    acme = make.funded_tenant("Acme", credits=50)
    occupy(acme, 200 * GiB)  # 1,800 credits a month: 60 a day
    admin = make.admin_token_headers()

    bill(START)  # 60 due, 50 available: 50 paid, 10 owed, never below zero
    assert [entry.amount for entry in storage_entries(acme)] == [-50]
    assert storage_entries(acme)[0].description.endswith("; 10 of 60 owed, taken from the next recharge")
    account = ledger.account(acme.tenant.id)
    assert (account.balance, account.held, tenant_row(acme).storage_fees_owed) == (0, 0, 10)

    response = client.post("/api/v1/images/generations", headers=key_headers(acme), json=IMAGE)
    error = assert_error(response, 402, "storage_fees_owed")
    assert "owes 10 credits of storage fees" in error["message"]

    bill(START + timedelta(days=1))  # nothing available: all 60 owed, no entry
    assert len(storage_entries(acme)) == 1
    assert tenant_row(acme).storage_fees_owed == 70

    # A recharge pays what is owed first, in its own STORAGE entry, in the same transaction.
    response = client.post(f"/admin/api/tenants/{acme.tenant.id}/recharge", headers=admin, json={"amount": 30})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["balance"] == 0
    assert tenant_row(acme).storage_fees_owed == 40
    assert_error(client.post("/api/v1/images/generations", headers=key_headers(acme), json=IMAGE), 402,
                 "storage_fees_owed")

    response = client.post(f"/admin/api/tenants/{acme.tenant.id}/recharge", headers=admin, json={"amount": 1000})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["balance"] == 960
    assert tenant_row(acme).storage_fees_owed == 0
    assert [entry.amount for entry in storage_entries(acme)] == [-50, -30, -40]
    transactions = client.get("/api/v1/transactions?type=STORAGE", headers=key_headers(acme)).get_json()["data"]
    assert [t["amount"] for t in transactions] == [-40, -30, -50]
    assert transactions[0]["description"] == "Storage fees owed: 40 of 40 credits, paid from a recharge"

    response = client.post("/api/v1/images/generations", headers=key_headers(acme), json=IMAGE)
    assert response.status_code == 200, response.get_json()
    ledger_is_clean(runner)


def test_downloads_through_http_are_metered_as_sent_and_charged_as_traffic(app, client, make, runner):
    billing.create_rule(TEST_ACTOR, name="Traffic", tier1_price=0, tier2_price=0, tier3_price=0,
                        traffic_price=10_000_000, active=True)
    acme = make.funded_tenant("Acme", credits=10_000)
    response = client.post("/api/v1/images/generations", headers=key_headers(acme), json=IMAGE)
    assert response.status_code == 200, response.get_json()
    parts = urlsplit(response.get_json()["data"][0]["url"])
    link = f"{parts.path}?{parts.query}"

    whole = client.get(link)
    assert whole.status_code == 200
    size = len(whole.data)
    assert size > 100
    part = client.get(link, headers={"Range": "bytes=0-99"})
    assert (part.status_code, len(part.data)) == (206, 100)
    assert client.head(link).status_code == 200  # the headers only: nothing sent, nothing counted
    assert client.get(link, headers={"If-None-Match": whole.headers["ETag"]}).status_code == 304
    downloaded = size + 100
    assert tenant_row(acme).storage_download_unbilled_bytes == downloaded

    result = runner.invoke(args=["storage", "bill"])  # yesterday: the downloads counted until now
    assert result.exit_code == 0, result.output
    assert "billed 1 tenant(s) (rule 'Traffic')" in result.output

    # By hand: 10,000,000 credits per GiB, so each byte costs 10,000,000 x 1,000 / 2^30 milli-credits.
    millicredits = downloaded * 10_000_000 * 1000 // GiB
    entries = storage_entries(acme)
    assert [entry.amount for entry in entries] == [-(millicredits // 1000)]
    row = usage_row(acme, datetime.now(timezone.utc).date() - timedelta(days=1))
    assert (row.download_bytes, row.traffic_credits, row.storage_credits) == (downloaded, millicredits // 1000, 0)
    assert tenant_row(acme).storage_download_unbilled_bytes == 0  # taken by the bill, never charged twice
    assert tenant_row(acme).storage_fee_carry_millicredits == millicredits % 1000
    ledger_is_clean(runner)


def test_custom_mode_tenants_are_metered_but_pay_nothing_and_have_no_quota_unless_set(app, client, make, runner):
    standard_rule()
    own = make.funded_tenant("Own bucket", credits=1000)
    with S3Server() as s3:  # the tenant's own bucket, on moto's S3
        app.config["FETCH_ALLOWLIST"] = (s3.endpoint,)
        buckets.save_config(own.tenant.id, TEST_ACTOR, buckets.BucketSettings(
            "s3", s3.create_bucket("own-bucket"), s3.access_key_id, s3.secret, endpoint=s3.endpoint, region=REGION))
        buckets.verify(own.tenant.id, TEST_ACTOR)
        buckets.set_mode(own.tenant.id, TEST_ACTOR, "CUSTOM")
        occupy(own, 700 * GiB)
        response = client.post("/api/v1/images/generations", headers=key_headers(own), json=IMAGE)
        assert response.status_code == 200, response.get_json()  # no quota set: none applies
        parts = urlsplit(response.get_json()["data"][0]["url"])
        sent = client.get(f"{parts.path}?{parts.query}")
        assert sent.status_code == 302  # the bucket serves the bytes: the traffic is the object's size
        downloaded = db.session.scalar(sa.select(StoredFile.size_bytes).where(
            StoredFile.generation_id == uuid.UUID(response.get_json()["generation_id"])))

    bill(START)
    row = usage_row(own, START)
    assert row.oss_mode == "CUSTOM" and row.storage_bytes > 700 * GiB and row.download_bytes == downloaded
    assert (row.storage_credits, row.traffic_credits, row.rule_id) == (0, 0, None)
    assert storage_entries(own) == []
    assert tenant_row(own).storage_download_unbilled_bytes == 0

    tenants.update_tenant(own.tenant.id, TEST_ACTOR, {"storage_quota_bytes": tenant_row(own).storage_used_bytes + MiB})
    balance = ledger.account(own.tenant.id).balance
    assert_error(client.post("/api/v1/images/generations", headers=key_headers(own), json=IMAGE), 413,
                 "storage_quota_exceeded")
    assert ledger.account(own.tenant.id) == ledger.Account(balance, 0)
    ledger_is_clean(runner)


def test_without_an_active_rule_storage_is_metered_and_nothing_charged(app, make):
    acme = make.funded_tenant("Acme", credits=1000)
    occupy(acme, 300 * GiB)
    run = bill(START)
    assert (run.rule, run.billed, run.credits) == (None, 1, 0)
    assert usage_row(acme, START).storage_bytes == 300 * GiB
    assert storage_entries(acme) == []

    rule = standard_rule()
    assert bill(START).billed == 0  # that day was billed (for nothing); the next ones are charged
    assert bill(START + timedelta(days=1)).rule.id == rule.id
    assert [entry.amount for entry in storage_entries(acme)] == [-86]  # 2,600 a month / 30 = 86.67


def test_the_scheduled_job_bills_yesterday_once(app, make):
    standard_rule()
    acme = make.funded_tenant("Acme", credits=1000)
    occupy(acme, 90 * GiB)
    assert SCHEDULE["storage.bill"] == {"minute": "20"}  # hourly: the first run after midnight bills the day
    for _run in range(3):
        resolve("storage.bill")()
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    assert [entry.reference for entry in storage_entries(acme)] == [f"storage:{yesterday}"]
    assert ledger.account(acme.tenant.id).balance == 1000 - 30


def test_a_day_that_is_not_over_is_not_billed(app, make, runner):
    make.funded_tenant("Acme")
    with pytest.raises(InvalidInput, match="2025-03-10 is not over yet"):
        billing.bill(date(2025, 3, 10), now=datetime(2025, 3, 10, 23, 59, tzinfo=timezone.utc))
    assert db.session.scalar(sa.select(sa.func.count()).select_from(TenantStorageUsage)) == 0
    result = runner.invoke(args=["storage", "bill", "--date", "2999-01-01"])
    assert result.exit_code == 1 and "not over yet" in result.output
    result = runner.invoke(args=["storage", "bill", "--date", "yesterday"])
    assert result.exit_code == 2 and "'yesterday' does not match the format '%Y-%m-%d'" in result.output


def test_ledger_verify_finds_a_storage_fee_neither_paid_nor_owed(app, make, runner):
    standard_rule()
    acme = make.funded_tenant("Acme", credits=10)
    occupy(acme, 90 * GiB)
    bill(START)  # 30 due: 10 paid, 20 owed
    ledger_is_clean(runner)
    db.session.execute(sa.update(Tenant).where(Tenant.id == acme.tenant.id).values(storage_fees_owed=0))
    db.session.commit()
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 1
    assert f"tenant {acme.tenant.id} (Acme): storage fees billed 30 != paid 10 + owed 0" in result.output


def test_two_bills_of_the_same_day_in_parallel_charge_once(app, make, runner, is_postgres):
    require_postgres(is_postgres)
    standard_rule()
    acme = make.funded_tenant("Acme", credits=10_000)
    occupy(acme, 200 * GiB)  # 60 a day
    for day in days(START, 5):  # several rounds, so the race is really run
        outcomes = _race(app, 2, lambda _i: bill(day).billed)
        assert sorted(outcomes) == [0, 1], outcomes
    assert [entry.amount for entry in storage_entries(acme)] == [-60] * 5
    assert db.session.scalar(sa.select(sa.func.count()).select_from(TenantStorageUsage)) == 5
    assert ledger.account(acme.tenant.id).balance == 10_000 - 300
    ledger_is_clean(runner)


def test_storage_verify_reports_drift_in_the_meter_and_the_objects(app, client, make, runner):
    acme = make.funded_tenant("Acme", credits=1000)
    response = client.post("/api/v1/images/generations", headers=key_headers(acme), json=IMAGE)
    assert response.status_code == 200, response.get_json()
    for args in (["storage", "verify"], ["storage", "verify", "--deep"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 0, result.output

    stored = db.session.scalar(sa.select(StoredFile).where(StoredFile.tenant_id == acme.tenant.id))
    root = Path(app.config["STORAGE_DIR"])
    (root / stored.storage_key).unlink()
    stray = root / "tenants" / str(acme.tenant.id) / "api" / "stray.png"
    stray.write_bytes(b"not recorded")
    db.session.execute(sa.update(Tenant).where(Tenant.id == acme.tenant.id)
                       .values(storage_used_bytes=Tenant.storage_used_bytes + 5))
    db.session.commit()

    result = runner.invoke(args=["storage", "verify"])
    assert result.exit_code == 1
    assert f"tenant {acme.tenant.id} (Acme): meter {stored.size_bytes + 5} bytes != {stored.size_bytes} bytes in 1 " \
           "stored object(s) (drift +5)" in result.output
    assert "missing from their backend" not in result.output  # only --deep lists the backend

    result = runner.invoke(args=["storage", "verify", "--deep"])
    assert result.exit_code == 1
    assert f"tenant {acme.tenant.id}: 1 stored object(s) missing from their backend, e.g. {stored.storage_key}" \
        in result.output
    assert f"tenant {acme.tenant.id}: 1 object(s) in the backend that no live record accounts for, e.g. " \
           f"tenants/{acme.tenant.id}/api/stray.png" in result.output


def test_purging_a_deactivated_tenant_removes_its_objects_from_our_storage(app, client, make, runner):
    acme = make.funded_tenant("Acme", credits=1000)
    response = client.post("/api/v1/images/generations", headers=key_headers(acme), json=IMAGE)
    assert response.status_code == 200, response.get_json()
    stored = db.session.scalar(sa.select(StoredFile).where(StoredFile.tenant_id == acme.tenant.id))
    path = Path(app.config["STORAGE_DIR"]) / stored.storage_key
    assert path.exists()

    result = runner.invoke(args=["tenants", "purge", str(acme.tenant.id)])
    assert result.exit_code == 1 and "Deactivate the tenant first" in result.output
    assert path.exists()

    tenants.update_tenant(acme.tenant.id, TEST_ACTOR, {"is_active": False})
    result = runner.invoke(args=["tenants", "purge", str(acme.tenant.id)])
    assert result.exit_code == 0, result.output
    assert f"Unmetered 1 object(s) ({stored.size_bytes} bytes); removed 1" in result.output
    assert not path.exists()
    db.session.expire_all()
    assert db.session.get(StoredFile, stored.id).status == "DELETED"
    assert tenant_row(acme).storage_used_bytes == 0
    assert runner.invoke(args=["storage", "verify", "--deep"]).exit_code == 0
    result = runner.invoke(args=["tenants", "purge", str(uuid.uuid4())])
    assert result.exit_code == 1 and "No such tenant" in result.output
