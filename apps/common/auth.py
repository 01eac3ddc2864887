"""API authentication: ``Authorization: Bearer aigc_…`` tokens scoped to one
app, or a logged-in staff session. Views name their app in ``app_scope``."""
from __future__ import annotations

from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from apps.common.models import ApiToken, hash_token


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0] != self.keyword:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        token = ApiToken.objects.select_related("owner").filter(key_hash=hash_token(parts[1])).first()
        if token is None or not token.active:
            raise exceptions.AuthenticationFailed("Unknown or revoked API token.")
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return (token.owner, token) if token.owner else (_TokenUser(token), token)

    def authenticate_header(self, request) -> str:
        return self.keyword


class _TokenUser:
    """Stands in for request.user when a token has no owner account."""

    is_authenticated = True
    is_staff = False
    is_active = True
    pk = None

    def __init__(self, token: ApiToken):
        self.username = f"token:{token.name}"


class HasAppScope(permissions.BasePermission):
    """Tokens reach only their own app's endpoints; staff sessions reach all."""

    message = "This API token is not scoped to this app."

    def has_permission(self, request, view) -> bool:
        scope = getattr(view, "app_scope", None)
        token = request.auth if isinstance(request.auth, ApiToken) else None
        if token is not None:
            if scope is None or token.app != scope:
                self.message = f"This token is scoped to '{token.app}', not '{scope or 'staff'}'."
                return False
            return True
        user = request.user
        if not (user and user.is_authenticated):
            return False  # DRF turns this into 401 with the Bearer challenge
        return bool(user.is_staff)
