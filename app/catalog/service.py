"""The model catalog: which models exist, which a tenant may use, and their price rules."""
from __future__ import annotations

import functools

import sqlalchemy as sa

from app.catalog import pricing
from app.catalog.models import AiModel, PriceRule
from app.core import cache
from app.core.cache import Snapshot
from app.core.db import parse_uuid
from app.core.errors import Forbidden, InvalidInput, NotFound
from app.core.transaction import atomic
from app.extensions import db
from app.identity import audit
from app.identity.audit import Actor
from app.identity.models import Tenant


@atomic()
def seed_catalog(actor: Actor) -> list[str]:
    """Insert the contract's models that are missing; never touch existing ones. Returns the new ids."""
    from app.catalog.seed import MODELS
    existing = set(db.session.scalars(sa.select(AiModel.model_id)))
    added = []
    for order, spec in enumerate(MODELS):
        if spec["model_id"] in existing:
            continue
        pricing.parse_prices(spec["billing_type"], spec["prices"])
        model = AiModel(model_id=spec["model_id"], kind=spec["kind"], display_name=spec["display_name"],
                        provider=spec["provider"], route=spec["route"], capabilities=spec["capabilities"],
                        sort_order=order)
        db.session.add(model)
        db.session.flush()
        db.session.add(PriceRule(model_id=model.id, billing_type=spec["billing_type"], prices=spec["prices"]))
        added.append(spec["model_id"])
    if added:
        audit.record(actor, "catalog.seed", target_type="ai_model", changes={"added": added})
    return added


def _enabled(tenant: Tenant):
    query = (sa.select(AiModel, PriceRule).join(PriceRule, PriceRule.model_id == AiModel.id)
             .where(AiModel.is_active.is_(True)))
    if tenant.enabled_models:
        query = query.where(AiModel.model_id.in_(tenant.enabled_models))
    return query


def models_for_tenant(tenant: Tenant) -> list[tuple[AiModel, PriceRule]]:
    return [tuple(row) for row in db.session.execute(_enabled(tenant).order_by(AiModel.sort_order, AiModel.model_id))]


def visible_model(tenant: Tenant, model_id: str) -> tuple[AiModel, PriceRule]:
    """One of the models `models_for_tenant` lists. Any other id, unknown or not enabled, is the same
    404, as it is absent from the list."""
    row = db.session.execute(_enabled(tenant).where(AiModel.model_id == model_id)).first()
    if row is None:
        raise NotFound(f"The model {model_id!r} does not exist or is not enabled for this tenant.",
                       code="model_not_found", param="model")
    return row[0], row[1]


# Built once: a cache miss runs it. The outer join tells a model without a price rule from no model.
_PRICED_MODEL = (sa.select(AiModel, PriceRule).outerjoin(PriceRule, PriceRule.model_id == AiModel.id)
                 .where(AiModel.model_id == sa.bindparam("model_id")))


def _read_priced(model_id: str) -> tuple[Snapshot, Snapshot | None] | None:
    row = db.session.execute(_PRICED_MODEL, {"model_id": model_id}).first()
    if row is None:
        return None
    return Snapshot(row[0]), Snapshot(row[1]) if row[1] is not None else None


def _priced(model_id: str) -> tuple[Snapshot, Snapshot | None] | None:
    """The model and its rule as read-only snapshots, cached per process (app/core/cache.py): every
    generation needs them and they change when an admin edits the catalog."""
    return cache.cached("models", model_id, functools.partial(_read_priced, model_id))


def priced_model(model_id: str) -> tuple[AiModel, PriceRule]:
    """A model and its rule by id, whoever may use it now: a queued generation runs as it was accepted.
    Read-only snapshots of the rows (never change them)."""
    found = _priced(model_id)
    if found is None or found[1] is None:
        raise NotFound(f"The model {model_id!r} does not exist.", code="model_not_found", param="model")
    return found


def model_for_tenant(tenant, model_id: str | None) -> tuple[AiModel, PriceRule]:
    """The model and its price rule, if this tenant may use it: unknown → 404, not enabled → 403.
    `tenant`: a Tenant or its cached access (anything with enabled_models); the result, read-only
    snapshots of the rows."""
    if not model_id or not isinstance(model_id, str):
        raise InvalidInput("model is required.", param="model")
    found = _priced(model_id)
    if found is None:
        raise NotFound(f"The model {model_id!r} does not exist.", code="model_not_found", param="model")
    model, rule = found
    if rule is not None and model.is_active and (not tenant.enabled_models or model_id in tenant.enabled_models):
        return model, rule
    raise Forbidden(f"The model {model_id!r} is not enabled for this tenant.", code="model_not_enabled",
                    param="model")


def list_models() -> list[tuple[AiModel, PriceRule]]:
    return [tuple(row) for row in db.session.execute(
        sa.select(AiModel, PriceRule).join(PriceRule, PriceRule.model_id == AiModel.id)
        .order_by(AiModel.kind, AiModel.sort_order, AiModel.model_id))]


def get_model(model_uuid) -> tuple[AiModel, PriceRule]:
    model_uuid = parse_uuid(model_uuid)
    row = db.session.execute(sa.select(AiModel, PriceRule).join(PriceRule, PriceRule.model_id == AiModel.id)
                             .where(AiModel.id == model_uuid)).first() if model_uuid else None
    if row is None:
        raise NotFound("No such model.", code="model_not_found")
    return row[0], row[1]


@atomic()
def update_model(model_uuid, actor: Actor, *, is_active: bool | None = None, display_name: str | None = None,
                 capabilities: dict | None = None, billing_type: str | None = None,
                 prices: dict | None = None) -> tuple[AiModel, PriceRule]:
    model, rule = get_model(model_uuid)
    # Everything is validated before anything is applied: a refused change must leave no half of
    # itself in the session for a later commit to pick up.
    model_values, rule_values = {}, {}
    if is_active is not None:
        model_values["is_active"] = is_active
    if display_name is not None:
        if not display_name.strip():
            raise InvalidInput("Display name must not be empty.", param="display_name")
        model_values["display_name"] = display_name.strip()
    if capabilities is not None:
        if not isinstance(capabilities, dict):
            raise InvalidInput("Capabilities must be a JSON object.", param="capabilities")
        model_values["capabilities"] = capabilities
    if billing_type is not None or prices is not None:
        new_type = billing_type or rule.billing_type
        new_prices = pricing.parse_prices(new_type, prices if prices is not None else rule.prices).model_dump()
        rule_values = {"billing_type": new_type, "prices": new_prices}
    changes = audit.diff(model, model_values) | audit.diff(rule, rule_values)
    if changes:
        cache.changed("ai_models")
        audit.record(actor, "model.update", target_type="ai_model", target_id=model.id,
                     changes={"model_id": model.model_id, **changes})
    return model, rule
