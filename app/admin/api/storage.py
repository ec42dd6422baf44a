"""Storage in the JSON admin API: the billing rules (one active at a time) and each tenant's storage
report and quota."""
from __future__ import annotations

from flask import g, jsonify

from app.admin.api import TAGS, admin_actor, api_bp
from app.api.openapi import endpoint
from app.schemas import dump
from app.schemas.storage import (StorageQuotaIn, StorageRuleCreateIn, StorageRuleListOut, StorageRuleOut,
                                 StorageRuleUpdateIn, TenantStorageOut, TenantStorageQuery, storage_out)
from app.storage import billing


@api_bp.get("/storage/rules")
@endpoint("The storage billing rules, the active one first", response=StorageRuleListOut, errors=(401,), tags=TAGS)
def list_storage_rules():
    return jsonify(dump(StorageRuleListOut, {"data": billing.list_rules()}))


@api_bp.post("/storage/rules")
@endpoint("Add a storage billing rule (is_active makes it the one that bills)", body=StorageRuleCreateIn,
          response=StorageRuleOut, status=201, errors=(401, 409), tags=TAGS)
def create_storage_rule(body: StorageRuleCreateIn):
    fields = body.model_dump(exclude_none=True)
    rule = billing.create_rule(admin_actor(), active=fields.pop("is_active", False), **fields)
    return jsonify(dump(StorageRuleOut, rule)), 201


@api_bp.get("/storage/rules/<rule_id>")
@endpoint("Show a storage billing rule", response=StorageRuleOut, errors=(401, 404), tags=TAGS)
def show_storage_rule(rule_id: str):
    return jsonify(dump(StorageRuleOut, billing.get_rule(rule_id)))


@api_bp.patch("/storage/rules/<rule_id>")
@endpoint("Change a storage billing rule's prices, or (de)activate it; days already billed keep their cost",
          body=StorageRuleUpdateIn, response=StorageRuleOut, errors=(401, 404, 409), tags=TAGS)
def update_storage_rule(rule_id: str, body: StorageRuleUpdateIn):
    rule = billing.update_rule(rule_id, admin_actor(), body.model_dump(exclude_unset=True))
    return jsonify(dump(StorageRuleOut, rule))


@api_bp.get("/tenants/<tenant_id>/storage")
@endpoint("A tenant's storage: bytes used, quota, fees owed, usage by day, by member and by kind",
          query=TenantStorageQuery, response=TenantStorageOut, errors=(401, 404), tags=TAGS)
def tenant_storage(query: TenantStorageQuery):
    return jsonify(storage_out(billing.tenant_report(g.tenant.id, date_from=query.date_from,
                                                                date_to=query.date_to)))


@api_bp.put("/tenants/<tenant_id>/storage/quota")
@endpoint("Set a tenant's storage quota in bytes (null: none); answers its storage", body=StorageQuotaIn,
          response=TenantStorageOut, errors=(401, 404), tags=TAGS)
def set_storage_quota(body: StorageQuotaIn):
    billing.set_quota(g.tenant.id, body.storage_quota_bytes, admin_actor())
    return jsonify(storage_out(billing.tenant_report(g.tenant.id)))
