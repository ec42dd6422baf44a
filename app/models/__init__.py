"""Every model, imported here so Alembic and the app see one complete metadata."""
from app.core.db import Base, parse_uuid, utcnow
from app.identity.models import (
                                KEY_MODES,
                                KEY_SCOPES,
                                OSS_MODES,
                                USER_ROLES,
                                AdminToken,
                                ApiKey,
                                AuditLog,
                                PlatformAdmin,
                                RefreshToken,
                                Tenant,
                                TenantDevice,
                                TenantUser,
                                UserSession,
)
from app.models.billing import (
                                BILLING_TYPES,
                                ENTRY_TYPES,
                                HOLD_STATUSES,
                                MODEL_KINDS,
                                AiModel,
                                CreditHold,
                                IdempotencyKey,
                                LedgerEntry,
                                PlatformSetting,
                                PriceRule,
)
from app.models.generation import GENERATION_STATUSES, Gateway, Generation, UsageDaily, UsageRecord
from app.storage.models import FILE_STATUSES, StoredFile

__all__ = [
    "FILE_STATUSES", "GENERATION_STATUSES", "Gateway", "Generation", "StoredFile", "UsageDaily", "UsageRecord",
    "AiModel", "BILLING_TYPES", "CreditHold", "ENTRY_TYPES", "HOLD_STATUSES", "IdempotencyKey", "LedgerEntry",
    "MODEL_KINDS", "PlatformSetting", "PriceRule",
    "AdminToken", "ApiKey", "AuditLog", "Base", "KEY_MODES", "KEY_SCOPES", "OSS_MODES", "PlatformAdmin",
    "RefreshToken", "Tenant", "TenantDevice", "TenantUser", "USER_ROLES", "UserSession", "parse_uuid", "utcnow",
]
