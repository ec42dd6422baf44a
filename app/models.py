"""Every model, imported here so Alembic and the app see one complete metadata. Code imports a model
from its own package (app.identity.models, app.billing.models, …); this module is for Alembic,
the shell and tests."""
from app.billing.models import ENTRY_TYPES, HOLD_STATUSES, CreditHold, IdempotencyKey, LedgerEntry, PlatformSetting
from app.catalog.models import BILLING_TYPES, MODEL_KINDS, AiModel, PriceRule
from app.core.db import Base, parse_uuid, utcnow
from app.gateway.models import Gateway, GatewayCircuit
from app.generation.models import GENERATION_STATUSES, Generation, UsageDaily, UsageRecord
from app.identity.models import (COUNTER_KINDS, KEY_MODES, KEY_SCOPES, OSS_MODES, USER_ROLES, AdminToken, ApiKey,
                                 AuditLog, LoginFailureCount, PlatformAdmin, RefreshToken, Tenant, TenantDevice,
                                 TenantUser, UserSession)
from app.storage.models import (FILE_STATUSES, FILE_VARIANTS, StorageBillingRule, StoredFile, TenantStorageConfig,
                                TenantStorageUsage)
from app.webhooks.models import DELIVERY_STATUSES, EVENT_TYPES, WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
    "ENTRY_TYPES", "HOLD_STATUSES", "CreditHold", "IdempotencyKey", "LedgerEntry", "PlatformSetting",
    "BILLING_TYPES", "MODEL_KINDS", "AiModel", "PriceRule",
    "Base", "parse_uuid", "utcnow",
    "COUNTER_KINDS", "KEY_MODES", "KEY_SCOPES", "OSS_MODES", "USER_ROLES", "AdminToken", "ApiKey", "AuditLog",
    "LoginFailureCount", "PlatformAdmin", "RefreshToken", "Tenant", "TenantDevice", "TenantUser", "UserSession",
    "GENERATION_STATUSES", "Gateway", "GatewayCircuit", "Generation", "UsageDaily", "UsageRecord",
    "FILE_STATUSES", "FILE_VARIANTS", "StorageBillingRule", "StoredFile", "TenantStorageConfig", "TenantStorageUsage",
    "DELIVERY_STATUSES", "EVENT_TYPES", "WebhookAttempt", "WebhookDelivery", "WebhookEndpoint",
]
