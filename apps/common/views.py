"""Staff pages shared by all apps: home, jobs, API tokens, health."""
from __future__ import annotations

from django.contrib import messages
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from apps.common import timezones
from apps.common.health import health
from apps.common.jobs import enqueue
from apps.common.models import APP_SCOPES, ApiToken, Job
from apps.common.staff import staff_member_required
from apps.common.tasks import demo_countdown


@staff_member_required
def home(request):
    return render(request, "common/home.html", {
        "jobs": Job.objects.all()[:8],
        "health": health(),
    })


@staff_member_required
def jobs_page(request):
    return render(request, "common/jobs.html", {"jobs": _jobs(request)})


@staff_member_required
def jobs_table(request):
    """The partial htmx re-fetches every 2 s so progress moves without reload."""
    return render(request, "common/_jobs_table.html", {"jobs": _jobs(request)})


def _jobs(request):
    qs = Job.objects.all()
    if kind := request.GET.get("kind"):
        qs = qs.filter(kind__startswith=kind)
    return qs[:100]


@staff_member_required
def job_detail(request, pk: int):
    return render(request, "common/job_detail.html", {"job": get_object_or_404(Job, pk=pk)})


@staff_member_required
@require_POST
def start_demo_job(request):
    job = enqueue(demo_countdown, "common.demo", user=request.user, steps=20, delay_s=0.25)
    messages.success(request, f"Queued demo job #{job.pk}.")
    return redirect("jobs")


NEW_KEY_SESSION = "aigc_new_token"


@staff_member_required
def tokens_page(request):
    """Post/redirect/get: a created key waits in the session for the one GET that
    shows it, so reloading /tokens/ (or going back) never creates another token."""
    errors: dict[str, str] = {}
    values = {"name": "", "app": ""}
    if request.method == "POST":
        values = {"name": (request.POST.get("name") or "").strip(), "app": request.POST.get("app") or ""}
        if not values["name"]:
            errors["name"] = "Give the token a name (the client that will use it)."
        elif len(values["name"]) > 100:
            errors["name"] = "At most 100 characters."
        if values["app"] not in dict(APP_SCOPES):
            errors["app"] = "Pick the app this token may call."
        if not errors:
            token, raw = ApiToken.issue(name=values["name"], app=values["app"], owner=request.user)
            request.session[NEW_KEY_SESSION] = {"id": token.pk, "key": raw}
            return redirect("tokens")
    shown = request.session.pop(NEW_KEY_SESSION, None)
    new_token = ApiToken.objects.filter(pk=shown["id"]).first() if shown else None
    return render(request, "common/tokens.html", {
        "tokens": ApiToken.objects.all(), "apps": APP_SCOPES, "new_key": shown["key"] if shown else None,
        "new_token": new_token, "errors": errors, "values": values,
    }, status=400 if errors else 200)


@staff_member_required
@require_POST
def revoke_token(request, pk: int):
    token = get_object_or_404(ApiToken, pk=pk)
    token.revoke()
    messages.success(request, f"Revoked {token}.")
    return redirect("tokens")


@staff_member_required
def account_page(request):
    """The user's settings: the timezone every date and chart is shown in."""
    error = None
    if request.method == "POST":
        name = (request.POST.get("timezone") or "").strip()
        if not timezones.valid(name):
            error = f"Unknown timezone {name[:64]!r}: pick one from the list (e.g. Europe/Paris)."
        else:
            timezones.set_for(request, name)
            messages.success(request, f"Dates are now shown in {name}.")
            return redirect("account")
    return render(request, "common/account.html", {
        "zones": timezones.choices(), "error": error, "current": timezone.get_current_timezone_name(),
        "now": timezone.now(),
    }, status=400 if error else 200)


@require_GET
def healthz(request):
    report = health()
    return JsonResponse(report, status=200 if report["ok"] else 503)


def login_locked_out(request, original_response=None, credentials=None):
    """django-axes' answer once an IP or a user name ran out of attempts: 429 with Retry-After."""
    from django.conf import settings
    from django.http import HttpResponse

    wait = int(settings.AXES_COOLOFF_TIME.total_seconds())
    response = HttpResponse(
        f"<!doctype html><title>Too many attempts</title><h1>Too many failed logins</h1>"
        f"<p>Sign-in from this address or for this user is paused; try again in {wait // 60} minutes.</p>",
        status=429,
    )
    response["Retry-After"] = str(wait)
    return response
