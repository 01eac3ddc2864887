"""Dates in the user's timezone: a user's choice (UserPreference) is copied into the
session at login and when changed, and every request activates it, so templates,
``|when`` and the charts (``<html data-tz>``) all show the same local time."""
from __future__ import annotations

import zoneinfo
from functools import lru_cache

from django.contrib.auth.signals import user_logged_in
from django.db import DatabaseError
from django.dispatch import receiver
from django.utils import timezone

SESSION_KEY = "aigc_tz"


@lru_cache(maxsize=1)
def choices() -> list[str]:
    return sorted(z for z in zoneinfo.available_timezones() if "/" in z or z == "UTC")


def valid(name: str) -> bool:
    return name in choices()


class TimezoneMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            name = request.session.get(SESSION_KEY) if hasattr(request, "session") else None
        except DatabaseError:
            # The session lives in the database: while it is away the view's own query fails too,
            # inside ServiceUnavailableMiddleware, which answers 503 (this middleware sits above it).
            name = None
        if name and valid(name):
            timezone.activate(zoneinfo.ZoneInfo(name))
        else:
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


def set_for(request, name: str) -> None:
    from apps.common.models import UserPreference

    UserPreference.objects.update_or_create(user=request.user, defaults={"timezone": name})
    request.session[SESSION_KEY] = name
    timezone.activate(zoneinfo.ZoneInfo(name))


@receiver(user_logged_in)
def _remember_timezone(sender, request, user, **kwargs):
    from apps.common.models import UserPreference

    if request is None or not hasattr(request, "session"):
        return
    pref = UserPreference.objects.filter(user=user).only("timezone").first()
    if pref and valid(pref.timezone):
        request.session[SESSION_KEY] = pref.timezone


def context(request) -> dict:
    """Template context: the timezone in force (for <html data-tz> and the top bar)."""
    return {"user_tz": timezone.get_current_timezone_name()}
