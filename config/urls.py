from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, register_converter
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from apps.common.converters import RowIdConverter

# <id:pk>: a row id that fits the database; longer numbers match no URL (404).
register_converter(RowIdConverter, "id")

urlpatterns = [
    # One login page: Django admin's own login sends people to the app's /login/ (keeping ?next=).
    path("admin/login/", RedirectView.as_view(pattern_name="login", query_string=True), name="admin-login-redirect"),
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(template_name="login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file, so the page needs no inline script (CSP).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("support/", include("apps.support.urls")),
    path("sentiment/", include("apps.sentiment.urls")),
    path("recommend/", include("apps.recommend.urls")),
    path("", include("apps.common.urls")),
]

# Django's own error answers are JSON with "detail" under /api/ paths.
handler400 = "apps.common.errors.bad_request"
handler403 = "apps.common.errors.permission_denied"
handler404 = "apps.common.errors.page_not_found"
handler500 = "apps.common.errors.server_error"
