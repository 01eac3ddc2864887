"""Staff dashboard: live feed, per-topic timelines with alert markers, alerts,
rules editor, webhook subscriptions with delivery logs, sources and training."""
from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.db import transaction
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from apps.common.jobs import enqueue
from apps.common.models import Job
from apps.common.staff import staff_member_required
from apps.sentiment import conf, services, webhooks
from apps.sentiment.models import (
    BUCKET_SECONDS,
    SENTIMENTS,
    Alert,
    AlertRule,
    BucketSize,
    Company,
    Delivery,
    NewsItem,
    NewsSource,
    Scope,
    TrendBucket,
    WebhookSubscription,
    bucket_start,
)

FEED_SIZE = 30
TIMELINE_POINTS = {"5m": 288, "1h": 168, "1d": 60}


def _feed():
    return NewsItem.objects.select_related("source", "classification").order_by("-published_at", "-id")[:FEED_SIZE]


def _model_info() -> dict:
    from apps.common import engine

    try:
        reg = engine.registry()
        current = reg.current(conf.MODEL_NAME)
    except Exception as exc:  # a broken artifacts dir must not take the dashboard down
        return {"error": str(exc)}
    if current is None:
        return {}
    heads = [(h, current.metrics[h]) for h in ("topic", "sentiment") if isinstance(current.metrics.get(h), dict)]
    return {"version": current.version, "created_at": current.created_at, "metrics": current.metrics,
            "heads": heads, "mode": current.metrics.get("mode", current.config.get("mode", "head")),
            "mode_reason": current.metrics.get("mode_reason", ""), "disk": engine.disk_usage_mb(conf.MODEL_NAME)}


@staff_member_required
def dashboard(request):
    size = request.GET.get("size", "1h")
    if size not in BucketSize.values:
        size = "1h"
    return render(request, "sentiment/dashboard.html", {
        "feed": _feed(),
        "alerts": Alert.objects.select_related("rule").exclude(state=Alert.State.CANCELLED)[:20],
        "size": size,
        "sizes": BucketSize.choices,
        "topics": conf.topics(),
        "sentiments": SENTIMENTS,
        "model": _model_info(),
        "unclassified": NewsItem.objects.filter(pending=True).count(),
        "total": NewsItem.objects.count(),
        "jobs": Job.objects.filter(kind__startswith="sentiment.")[:5],
        "disabled_subs": WebhookSubscription.objects.filter(enabled=False).exclude(disabled_reason="disabled by staff"),
    })


@staff_member_required
@require_GET
def feed_partial(request):
    return render(request, "sentiment/_feed.html", {"feed": _feed(), "topics": conf.topics(),
                                                    "sentiments": SENTIMENTS})


@staff_member_required
@require_GET
def alerts_partial(request):
    return render(request, "sentiment/_alerts.html", {
        "alerts": Alert.objects.select_related("rule").exclude(state=Alert.State.CANCELLED)[:20]})


@staff_member_required
@require_GET
def timeline_data(request):
    """Chart data: per topic (or the keys asked for), one series per bucket, ending
    at the latest bucket with news, plus the alerts that fall in the range."""
    size = request.GET.get("size", "1h")
    if size not in BucketSize.values:
        return JsonResponse({"detail": f"size must be one of {', '.join(BucketSize.values)}"}, status=400)
    scope = request.GET.get("scope", Scope.TOPIC)
    metric = request.GET.get("metric", "negative_count")
    points = TIMELINE_POINTS[size]
    step = timedelta(seconds=BUCKET_SECONDS[size])
    latest = TrendBucket.objects.filter(scope=scope, size=size).order_by("-start").values_list("start", flat=True)
    end = latest.first()
    if end is None:
        return JsonResponse({"labels": [], "starts": [], "series": [], "alerts": [], "size": size})
    first = TrendBucket.objects.filter(scope=scope, size=size).order_by("start").values_list("start", flat=True)[0]
    start = max(end - (points - 1) * step, first)  # no empty lead-in before the first news
    points = int((end - start) / step) + 1
    keys = request.GET.getlist("key") or (conf.topics() if scope == Scope.TOPIC else sorted(set(
        TrendBucket.objects.filter(scope=scope, size=size, start__gte=start).values_list("key", flat=True)))[:12])
    starts = [start + i * step for i in range(points)]
    index = {s: i for i, s in enumerate(starts)}
    series = {k: {"count": [0] * points, "negative_count": [0] * points, "negative_share": [0.0] * points,
                  "mean_sentiment": [None] * points} for k in keys}  # no news: a gap, not "neutral"
    for b in TrendBucket.objects.filter(scope=scope, size=size, key__in=keys, start__gte=start, start__lte=end):
        i = index.get(b.start)
        if i is None:
            continue
        s = series[b.key]
        s["count"][i], s["negative_count"][i] = b.count, b.negative_count
        s["negative_share"][i] = round(b.negative_share, 3)
        s["mean_sentiment"][i] = round(b.mean_sentiment, 3)
    alerts = []
    for a in Alert.objects.filter(scope=scope, key__in=keys, started_at__gte=start - step,
                                  started_at__lte=end).exclude(state=Alert.State.CANCELLED).select_related("rule"):
        when = bucket_start(a.started_at, size)
        if when in index:
            alerts.append({"id": a.pk, "key": a.key, "state": a.state, "index": index[when],
                           "start": a.started_at.isoformat(), "rule": a.rule.name, "value": a.peak_value})
    fmt = "%m-%d" if size == "1d" else "%m-%d %H:%M"
    return JsonResponse({
        "size": size, "scope": scope, "metric": metric,
        "labels": [s.strftime(fmt) for s in starts], "starts": [s.isoformat() for s in starts],
        "series": [{"key": k, **v} for k, v in series.items()], "alerts": alerts,
    })


@staff_member_required
@require_POST
def correct_label(request, pk: int):
    item = get_object_or_404(NewsItem, pk=pk)
    topic = request.POST.get("topic") or None
    sentiment = request.POST.get("sentiment") or None
    try:
        services.correct_label(item, request.user, topic=topic, sentiment=sentiment)
    except ValueError as exc:
        if request.headers.get("HX-Request"):
            return render(request, "sentiment/_feed_row.html", {"item": item, "error": str(exc),
                                                                "topics": conf.topics(), "sentiments": SENTIMENTS},
                          status=400)
        messages.error(request, str(exc))
        return redirect("sentiment:dashboard")
    item = NewsItem.objects.select_related("source", "classification").get(pk=pk)
    if request.headers.get("HX-Request"):
        return render(request, "sentiment/_feed_row.html", {"item": item, "topics": conf.topics(),
                                                            "sentiments": SENTIMENTS, "saved": True})
    messages.success(request, "Label corrected; the next training run uses it.")
    return redirect("sentiment:dashboard")


class RuleForm(forms.ModelForm):
    class Meta:
        model = AlertRule
        fields = ["name", "scope", "key", "metric", "direction", "window", "ratio", "history_days", "quantile",
                  "rearm_hours", "growth", "min_volume", "enabled"]

    def clean(self):
        from apps.sentiment.api import RULE_LIMITS

        data = super().clean()
        for name, (lo, hi) in RULE_LIMITS.items():
            if data.get(name) is not None and not lo <= data[name] <= hi:
                self.add_error(name, f"must be between {lo} and {hi}")
        key = (data.get("key") or "").strip()
        if data.get("scope") == Scope.TOPIC and key and key not in conf.topics():
            self.add_error("key", f"topic must be one of {', '.join(conf.topics())}")
        if data.get("scope") == Scope.COMPANY:
            data["key"] = key.upper().lstrip("$")
            if data["key"] and (err := unknown_company_error([data["key"]])):
                self.add_error("key", err)
        return data


def known_companies() -> set[str]:
    """Company keys a rule or subscription may name: the company list and any ticker seen in the news."""
    return set(Company.objects.values_list("ticker", flat=True)) | set(
        TrendBucket.objects.filter(scope=Scope.COMPANY).values_list("key", flat=True).distinct())


def unknown_company_error(keys: list[str]) -> str | None:
    """A key that matches nothing would be saved and silently never fire: say so instead."""
    known = known_companies()
    unknown = [k for k in keys if k not in known]
    if not unknown:
        return None
    hint = ", ".join(sorted(known)[:12]) or "none yet (add companies under Sources & model, or ingest news)"
    return f"no company {', '.join(unknown)} is known; known tickers: {hint}"


@staff_member_required
def rules_page(request, pk: int | None = None):
    rule = get_object_or_404(AlertRule, pk=pk) if pk else None
    form = RuleForm(request.POST or None, instance=rule)
    if request.method == "POST" and form.is_valid():
        from apps.sentiment.alerts import rule_changed

        with transaction.atomic():
            saved = form.save()
            if rule is not None:
                rule_changed(saved, set(form.changed_data))
        messages.success(request, f"Rule “{saved.name}” saved.")
        return redirect("sentiment:rules")
    return render(request, "sentiment/rules.html", {
        "form": form, "rule": rule, "rules": AlertRule.objects.all(), "topics": conf.topics()})


@staff_member_required
@require_POST
def rule_preview(request):
    """The rules editor's backtest: the unsaved form's rule replayed over the stored
    buckets (nothing written), as JSON for the preview chart."""
    from apps.sentiment.alerts import backtest

    form = RuleForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"detail": "fix the rule first", "errors": form.errors.get_json_data()}, status=400)
    rule = form.save(commit=False)
    keys = [k for k in request.POST.getlist("preview_key") if k] or None
    return JsonResponse(backtest(rule, keys=keys))


@staff_member_required
def alert_detail(request, pk: int):
    alert = get_object_or_404(Alert.objects.select_related("rule", "acknowledged_by"), pk=pk)
    items = alert.items.select_related("classification", "source").order_by("published_at")
    return render(request, "sentiment/alert_detail.html", {
        "alert": alert, "items": items, "updates": alert.updates.all(),
        "messages_sent": alert.messages.order_by("created_at")})


@staff_member_required
@require_POST
def alert_acknowledge(request, pk: int):
    from apps.sentiment.alerts import acknowledge

    acknowledge(get_object_or_404(Alert, pk=pk), request.user)
    messages.success(request, "Alert acknowledged.")
    return redirect("sentiment:alert", pk=pk)


@staff_member_required
@require_POST
def alert_silence(request, pk: int):
    from apps.sentiment.alerts import silence

    alert = get_object_or_404(Alert, pk=pk)
    try:
        silence(alert, request.user, float(request.POST.get("hours") or 0))
    except ValueError as exc:
        messages.error(request, f"Not silenced: {exc}")
        return redirect("sentiment:alert", pk=pk)
    messages.success(request, "Webhooks for this rule and key are silenced until the time shown.")
    return redirect("sentiment:alert", pk=pk)


@staff_member_required
@require_POST
def rule_delete(request, pk: int):
    rule = get_object_or_404(AlertRule, pk=pk)
    rule.delete()
    messages.success(request, f"Rule “{rule.name}” deleted.")
    return redirect("sentiment:rules")


NEW_SECRET_SESSION = "aigc_new_webhook_secret"


@staff_member_required
def webhooks_page(request):
    """Post/redirect/get: the new signing secret waits in the session for the one GET that
    shows it; a refused form comes back with what was typed and the reason by its field."""
    values = {"url": "", "description": "", "event_types": [], "scopes": ""}
    errors: dict[str, str] = {}
    if request.method == "POST":
        values = {"url": (request.POST.get("url") or "").strip(),
                  "description": request.POST.get("description", ""),
                  "event_types": request.POST.getlist("event_types"),
                  "scopes": (request.POST.get("scopes") or "").strip()}
        scopes = [s for s in values["scopes"].replace(",", " ").split() if s]
        companies = [s.split(":", 1)[1].upper().lstrip("$") for s in scopes if s.startswith("company:")]
        if not values["url"]:
            errors["url"] = "The URL to POST alerts to is required."
        elif companies and (err := unknown_company_error(companies)):
            errors["scopes"] = err
        else:
            try:
                sub = webhooks.create_subscription(
                    values["url"], description=values["description"], event_types=values["event_types"],
                    scopes=[f"company:{s.split(':', 1)[1].upper().lstrip('$')}" if s.startswith("company:") else s
                            for s in scopes])
            except webhooks.SubscriptionError as exc:
                text = str(exc)
                field = "event_types" if "event type" in text else "scopes" if "scope" in text else "url"
                errors[field] = text
            else:
                request.session[NEW_SECRET_SESSION] = {"id": sub.pk, "secret": sub.secret}
                messages.success(request, f"Subscription to {sub.url} created. Copy its signing secret now.")
                return redirect("sentiment:webhooks")
    shown = request.session.pop(NEW_SECRET_SESSION, None)
    return render(request, "sentiment/webhooks.html", {
        "subs": WebhookSubscription.objects.all(), "event_types": WebhookSubscription.EVENT_TYPES,
        "new_secret": shown["secret"] if shown else None, "values": values, "errors": errors,
    }, status=400 if errors else 200)


@staff_member_required
def webhook_detail(request, pk: int):
    sub = get_object_or_404(WebhookSubscription, pk=pk)
    deliveries = (Delivery.objects.filter(subscription=sub).select_related("message")
                  .prefetch_related("attempt_log").order_by("-created_at", "-id")[:100])
    shown = request.session.pop(NEW_SECRET_SESSION, None)
    new_secret = shown["secret"] if shown and shown.get("id") == sub.pk else None
    return render(request, "sentiment/webhook_detail.html", {"sub": sub, "deliveries": deliveries,
                                                             "new_secret": new_secret})


@staff_member_required
@require_POST
def webhook_resend(request, pk: int):
    sub = get_object_or_404(WebhookSubscription, pk=pk)
    ids = [int(x) for x in request.POST.getlist("delivery") if x.isdigit()] or None
    sent = webhooks.resend(sub, ids)
    messages.success(request, f"Re-sending {len(sent)} failed deliveries in creation order."
                     if sent else "No failed deliveries to re-send.")
    return redirect("sentiment:webhook", pk=pk)


@never_cache
@staff_member_required
@require_POST
def webhook_rotate_secret(request, pk: int):
    """A new signing secret, shown on the one GET this redirects to (post/redirect/get: a reload
    rotates nothing); the old one signs too until the grace period ends."""
    sub = webhooks.rotate_secret(get_object_or_404(WebhookSubscription, pk=pk))
    request.session[NEW_SECRET_SESSION] = {"id": sub.pk, "secret": sub.secret}
    until = timezone.localtime(sub.previous_secret_expires_at).strftime("%-d %b %Y, %H:%M %Z")
    messages.success(request, "New signing secret below: copy it now, it is not shown again. The previous "
                              f"secret keeps signing until {until}.")
    return redirect("sentiment:webhook", pk=sub.pk)


@staff_member_required
@require_POST
def webhook_toggle(request, pk: int):
    sub = get_object_or_404(WebhookSubscription, pk=pk)
    if sub.enabled:
        WebhookSubscription.objects.filter(pk=pk).update(enabled=False, disabled_reason="disabled by staff")
        messages.success(request, "Subscription disabled.")
    else:
        WebhookSubscription.objects.filter(pk=pk).update(enabled=True, disabled_reason="", disabled_at=None,
                                                         consecutive_failures=0)
        messages.success(request, "Subscription enabled; pending deliveries go out within a minute.")
    return redirect("sentiment:webhook", pk=pk)


@staff_member_required
def sources_page(request):
    if request.method == "POST" and request.POST.get("action") == "feed":
        name = (request.POST.get("name") or "").strip()
        url = (request.POST.get("url") or "").strip()
        try:
            interval = max(60, int(request.POST.get("poll_interval_s") or 300))
            webhooks.check_url(url)
            if not name:
                raise ValueError("a name is required")
            NewsSource.objects.create(name=name, kind=NewsSource.Kind.RSS, url=url, poll_interval_s=interval)
        except (ValueError, webhooks.SubscriptionError) as exc:
            messages.error(request, f"Feed not added: {exc}")
        except Exception as exc:  # e.g. a duplicate name
            messages.error(request, f"Feed not added: {exc}")
        else:
            messages.success(request, f"Feed “{name}” added; it is polled every {interval} s.")
        return redirect("sentiment:sources")
    if request.method == "POST" and request.POST.get("action") == "csv":
        upload = request.FILES.get("file")
        if upload is None:
            messages.error(request, "Choose a CSV file.")
        elif upload.size > conf.MAX_CSV_BYTES:
            messages.error(request, f"The CSV is larger than {conf.MAX_CSV_BYTES // (1024 * 1024)} MB.")
        else:
            try:
                with transaction.atomic():
                    job, rows = services.queue_csv_import(upload.read(), request.POST.get("source") or "csv upload",
                                                          request.user)
            except services.IngestError as exc:
                messages.error(request, f"Upload refused: {exc}")
            else:
                messages.success(request, f"Import of {rows} rows queued as job #{job.pk} (progress below and on "
                                          "the jobs page).")
        return redirect("sentiment:sources")
    return render(request, "sentiment/sources.html", {
        "sources": NewsSource.objects.all(), "model": _model_info(),
        "labelled": NewsItem.objects.exclude(gold_topic="", gold_sentiment="").count(),
        "jobs": Job.objects.filter(kind__startswith="sentiment.")[:10],
    })


@staff_member_required
@require_POST
def start_training(request):
    from apps.sentiment.tasks import train_sentiment

    job = enqueue(train_sentiment, "sentiment.train", user=request.user)
    messages.success(request, f"Training queued as job #{job.pk}.")
    return redirect("sentiment:sources")
