"""The one way a staff page asks for a login: the app's own /login/ page
(settings.LOGIN_URL), never Django admin's. Views import ``staff_member_required``
from here; it is Django's decorator pointed at that page."""
from __future__ import annotations

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required as _django_staff_member_required


def staff_member_required(view_func=None, redirect_field_name="next", login_url=None):
    return _django_staff_member_required(view_func, redirect_field_name=redirect_field_name,
                                         login_url=login_url or settings.LOGIN_URL)
