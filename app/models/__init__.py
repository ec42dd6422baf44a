"""Every model, imported here so Alembic and the app see one complete metadata."""
from app.models.admin import AdminToken, PlatformAdmin
from app.models.audit import AuditLog
from app.models.base import Base, parse_uuid, utcnow
from app.models.tenant import KEY_MODES, KEY_SCOPES, OSS_MODES, ApiKey, Tenant
from app.models.user import USER_ROLES, RefreshToken, TenantDevice, TenantUser, UserSession

__all__ = [
    "AdminToken", "ApiKey", "AuditLog", "Base", "KEY_MODES", "KEY_SCOPES", "OSS_MODES", "PlatformAdmin",
    "RefreshToken", "Tenant", "TenantDevice", "TenantUser", "USER_ROLES", "UserSession", "parse_uuid", "utcnow",
]
