"""A tenant's storage, for its admins: bytes used, quota, storage fees owed, and usage by day, by member
and by kind."""
from __future__ import annotations

from flask import jsonify

from app.api import bp
from app.api.auth import AUTH, current_principal, tenant_admin_required
from app.api.openapi import endpoint
from app.schemas.storage import TenantStorageOut, TenantStorageQuery, storage_out
from app.storage import billing


@bp.get("/tenant/storage")
@endpoint("The tenant's storage: bytes used, quota, fees owed, the prices it pays, usage by day (billed days), "
          "and what it stores by member and by kind", query=TenantStorageQuery, response=TenantStorageOut,
          auth=AUTH, errors=(403,), tags=("tenant",))
@tenant_admin_required
def tenant_storage(query: TenantStorageQuery):
    report = billing.tenant_report(current_principal().tenant_id, date_from=query.date_from, date_to=query.date_to)
    return jsonify(storage_out(report))
