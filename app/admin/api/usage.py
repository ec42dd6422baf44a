"""A tenant's usage records with the seed's summary by operation, in the JSON admin API."""
from __future__ import annotations

from flask import g, jsonify

from app.admin.api import TAGS, api_bp
from app.api.openapi import endpoint
from app.generation import usage
from app.schemas import dump
from app.schemas.generation import TenantUsageOut, UsageRecordOut, UsageRecordsQuery


def _record(row) -> dict:
    ids = {name: str(getattr(row, name)) if getattr(row, name) else None
           for name in ("user_id", "api_key_id", "generation_id")}
    return {**{name: getattr(row, name) for name in UsageRecordOut.model_fields if name not in ids}, "id": str(row.id),
            **ids}


@api_bp.get("/tenants/<tenant_id>/usage")
@endpoint("A tenant's usage records in a date range, with a summary by operation", query=UsageRecordsQuery,
          response=TenantUsageOut, errors=(401, 404), tags=TAGS)
def tenant_usage(query: UsageRecordsQuery):
    records = usage.records(g.tenant.id, date_from=query.date_from, date_to=query.date_to)
    summary = usage.by_operation(g.tenant.id, date_from=query.date_from, date_to=query.date_to)
    return jsonify(dump(TenantUsageOut, {"records": [_record(r) for r in records], "summary": summary}))
