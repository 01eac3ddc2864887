"""Staff pages: the dashboard (metrics, models, data), the inbox with
agent-assist, widget keys and the widget demo page. Thin: services do the work."""
from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from apps.common.jobs import enqueue
from apps.common.models import Job
from apps.common.staff import staff_member_required
from apps.support import api, handoff, ingest, services, shop, tasks
from apps.support import slots as slot_lib
from apps.support.forms import AnswerTemplateForm, WidgetKeyEditForm, WidgetKeyForm
from apps.support.models import AnswerTemplate, BotSettings, Conversation, IntentCluster, KBArticle, WidgetKey


def _version_row(mv, cur) -> dict:
    m = mv.metrics or {}
    gate = m.get("gate") or {}
    return {
        "version": mv.version, "created_at": _parse_date(mv.created_at),
        "current": cur is not None and mv.version == cur.version,
        "older": cur is not None and mv.version < cur.version,
        "pairs": m.get("pairs"), "templates": m.get("templates"), "chunks": m.get("kb_chunks"),
        "heldout": m.get("heldout"), "answer_acc": m.get("answer_accuracy", m.get("answer_recall_at_1")),
        "recall3": m.get("answer_recall_at_3"), "intent_acc": m.get("intent_accuracy"),
        "mode": (m.get("intent") or {}).get("mode"), "mode_reason": (m.get("intent") or {}).get("mode_reason", ""),
        "cov95": (m.get("coverage_at_precision") or {}).get("0.95", {}).get("coverage"),
        "threshold_reached": m.get("threshold_reached", True),
        "gate_reason": gate.get("reason", ""), "gate_promote": gate.get("promote"),
        "newly_answered": gate.get("newly_answered") or [],
        "gru_ppl": (m.get("lm") or {}).get("gru_val_perplexity"),
        "ngram_ppl": (m.get("lm") or {}).get("ngram_val_perplexity"),
        "wall_s": m.get("wall_s"),
    }


def _parse_date(value: str):
    from django.utils.dateparse import parse_datetime

    return parse_datetime(value) if value else None


def _version_rows():
    cur = services.current_version()
    return cur, [_version_row(mv, cur) for mv in services.versions()[:15]]


@staff_member_required
def dashboard(request):
    from apps.support import clusters as cluster_names

    cur, rows = _version_rows()
    curve = (cur.metrics or {}).get("curve", []) if cur else []
    cfg = BotSettings.get()
    metrics = services.dashboard_metrics()
    unnamed = list(IntentCluster.objects.filter(name="")[:10])
    suggestions = cluster_names.suggest(cluster_names.unnamed_clusters())
    live = next((r for r in rows if r["current"]), None)
    return render(request, "support/dashboard.html", {
        "metrics": metrics,
        "versions": rows,
        "current": cur,
        "live": live,
        "rollback_target": services.rollback_target(),
        "bot_settings": cfg,
        "chart_data": {"curve": curve, "threshold": cfg.threshold, "metrics": metrics},
        "clusters": [{"cluster": c, "suggestion": suggestions.get(c.pk)} for c in unnamed],
        "unanswered": services.unanswered_questions(10),
        "jobs": Job.objects.filter(kind__startswith="support.")[:8],
        "widget_keys": WidgetKey.objects.all()[:5],
        "disk": _disk_usage(),
        "waiting_values": shop.waiting_templates(),
    })


def _disk_usage() -> dict | None:
    from apps.common import engine

    try:
        return engine.disk_usage_mb(services.MODEL_NAME)
    except Exception:  # a broken artifacts dir must not take the dashboard down
        return None


@staff_member_required
def metrics_partial(request):
    return render(request, "support/_metrics.html", {"metrics": services.dashboard_metrics()})


def _inbox_context(request) -> dict:
    """The inbox's filters (open / pending / resolved / all, and the site) from the query string."""
    view = request.GET.get("status", "open")
    if view not in (*handoff.INBOX_VIEWS, "all"):
        view = "open"
    origins = handoff.inbox_origins()
    origin = request.GET.get("origin", "")
    origin = origin if origin in origins else ""
    return {"conversations": handoff.inbox(None if view == "all" else view, origin or None)[:100],
            "view": view, "origin": origin, "origins": origins, "counts": handoff.inbox_counts(),
            "views": [("open", "Open"), ("pending", "Pending (bot)"), ("resolved", "Resolved"), ("all", "All")]}


@staff_member_required
def inbox(request):
    return render(request, "support/inbox.html", _inbox_context(request))


@staff_member_required
def inbox_list(request):
    return render(request, "support/_inbox_list.html", _inbox_context(request))


@staff_member_required
def conversation(request, pk: int):
    conv = get_object_or_404(Conversation.objects.select_related("widget", "assigned_to", "closed_by"), pk=pk)
    msgs = list(conv.messages.select_related("feedback", "author").order_by("id"))
    return render(request, "support/conversation.html", {
        "conv": conv, "messages_list": msgs, "last_id": msgs[-1].pk if msgs else 0,
        "assist": services.agent_assist(conv), "inbox_view": handoff.inbox_view_of(conv.status),
        "assigned_name": handoff.agent_name(conv.assigned_to), "closed_by_name": handoff.agent_name(conv.closed_by),
    })


@staff_member_required
def conversation_messages(request, pk: int):
    conv = get_object_or_404(Conversation, pk=pk)
    msgs = conv.messages.select_related("feedback", "author").order_by("id")
    return render(request, "support/_messages.html", {"conv": conv, "messages_list": msgs})


@staff_member_required
@require_POST
def conversation_reply(request, pk: int):
    conv = get_object_or_404(Conversation, pk=pk)
    try:
        handoff.agent_reply(conv, request.POST.get("text", ""), request.user)
    except services.SupportError as exc:
        if request.headers.get("HX-Request"):
            return HttpResponseBadRequest(str(exc))
        messages.error(request, str(exc))
        return redirect("support:conversation", pk=pk)
    if request.headers.get("HX-Request"):
        msgs = conv.messages.select_related("feedback", "author").order_by("id")
        return render(request, "support/_messages.html", {"conv": conv, "messages_list": msgs})
    return redirect("support:conversation", pk=pk)


@staff_member_required
def conversation_assist(request, pk: int):
    conv = get_object_or_404(Conversation, pk=pk)
    draft = (request.POST.get("text") or request.GET.get("text") or "")[:2000]
    return render(request, "support/_assist.html", {"conv": conv, "assist": services.agent_assist(conv, draft),
                                                    "draft": draft})


@staff_member_required
@require_POST
def conversation_close(request, pk: int):
    """Resolve: the visitor sees the close and is asked to rate the conversation."""
    handoff.close_conversation(get_object_or_404(Conversation, pk=pk), request.user)
    messages.success(request, f"Conversation {pk} resolved.")
    return redirect("support:inbox")


@staff_member_required
@require_POST
def conversation_reopen(request, pk: int):
    handoff.reopen(get_object_or_404(Conversation, pk=pk))
    return redirect("support:conversation", pk=pk)


@staff_member_required
@require_POST
def conversation_pending(request, pk: int):
    """Pending: the bot answers the visitor again."""
    handoff.return_to_bot(get_object_or_404(Conversation, pk=pk))
    messages.success(request, f"Conversation {pk} is back with the bot.")
    return redirect("support:inbox")


@staff_member_required
@require_POST
def upload_transcripts(request):
    f = request.FILES.get("file")
    if f is None:
        messages.error(request, "Choose a CSV or JSONL file.")
        return redirect("support:dashboard")
    try:
        queued = api.queue_transcripts(f.read(), f.name, request.user)
    except (ingest.IngestError, api.ValidationError) as exc:
        messages.error(request, f"Nothing was imported: {exc}")
        return redirect("support:dashboard")
    (messages.success if queued.job else messages.info)(request, queued.message)
    return redirect("support:dashboard")


@staff_member_required
@require_POST
def upload_kb(request):
    files = [(f.name, f.read()) for f in request.FILES.getlist("files")]
    if not files:
        messages.error(request, "Choose one or more markdown or text files.")
        return redirect("support:dashboard")
    try:
        job = api.queue_kb(files, request.user)
    except (ingest.IngestError, api.ValidationError) as exc:
        messages.error(request, f"Nothing was imported: {exc}")
        return redirect("support:dashboard")
    messages.success(request, f"KB import queued as job #{job.pk}.")
    return redirect("support:dashboard")


@staff_member_required
@require_POST
def train(request):
    job = enqueue(tasks.train_support, "support.train", user=request.user)
    messages.success(request, f"Training queued as job #{job.pk}; the new version goes live when it finishes only "
                              "if it is at least as good as the live one (otherwise it waits here as a candidate).")
    return redirect("support:dashboard")


def _figures_diff(new: dict, old: dict | None) -> list[dict]:
    """The version's held-out figures beside the live version's, for the confirm pages."""
    names = [("answer_acc", "answer accuracy (right intent)"), ("recall3", "right answer in top 3"),
             ("intent_acc", "classifier intent accuracy"), ("cov95", "coverage at 95% precision"),
             ("heldout", "held-out questions"), ("pairs", "training pairs"), ("templates", "templates")]
    return [{"name": label, "new": new.get(key), "old": (old or {}).get(key)} for key, label in names]


@staff_member_required
@require_http_methods(["GET", "POST"])
def promote(request, version: int):
    """GET: what would change (figures and questions) and a confirm button; POST: promote."""
    mv = next((v for v in services.versions() if v.version == version), None)
    if mv is None:
        raise Http404(f"There is no version {version} of the support bot.")
    if request.method == "POST" and request.POST.get("confirm") == "yes":
        try:
            services.promote_version(version)
            messages.success(request, f"Version {version} is now live.")
        except services.VersionNotFound as exc:
            raise Http404(str(exc)) from exc
        except services.SupportError as exc:
            messages.error(request, str(exc))
        return redirect("support:dashboard")
    cur = services.current_version()
    row = _version_row(mv, cur)
    live = _version_row(cur, cur) if cur else None
    gate = (mv.metrics or {}).get("gate") or {}
    return render(request, "support/confirm_version.html", {
        "action": "promote", "version": row, "live": live, "figures": _figures_diff(row, live), "gate": gate,
        "gate_is_current": bool(cur) and gate.get("live_version") == cur.version,
    })


@staff_member_required
@require_http_methods(["GET", "POST"])
def rollback(request):
    """GET: which version a roll back makes live, and a confirm button; POST: roll back."""
    if request.method == "POST" and request.POST.get("confirm") == "yes":
        try:
            mv = services.rollback_version()
            messages.success(request, f"Rolled back to version {mv.version}.")
        except services.SupportError as exc:
            messages.error(request, str(exc))
        return redirect("support:dashboard")
    cur, target = services.current_version(), services.rollback_target()
    if target is None:
        try:
            services.rollback_version()  # says why there is nothing to roll back to
        except services.SupportError as exc:
            messages.error(request, str(exc))
        return redirect("support:dashboard")
    row, live = _version_row(target, cur), _version_row(cur, cur)
    return render(request, "support/confirm_version.html", {
        "action": "rollback", "version": row, "live": live, "figures": _figures_diff(row, live), "gate": {},
    })


@staff_member_required
@require_POST
def set_threshold(request):
    try:
        value = float(request.POST.get("threshold", ""))
        if not 0.0 <= value <= 1.0:
            raise ValueError
    except ValueError:
        messages.error(request, "The threshold must be a number between 0 and 1.")
        return redirect("support:dashboard")
    cfg = BotSettings.get()
    cfg.threshold, cfg.threshold_source = value, "staff"
    cfg.save(update_fields=["threshold", "threshold_source", "updated_at"])
    messages.success(request, f"Confidence threshold set to {value:.2f}.")
    return redirect("support:dashboard")


@staff_member_required
@require_POST
def name_cluster(request, pk: int):
    try:
        ingest.name_cluster(get_object_or_404(IntentCluster, pk=pk), request.POST.get("name", ""))
        messages.success(request, "Cluster named; retrain to use it.")
    except ingest.IngestError as exc:
        messages.error(request, str(exc))
    return redirect("support:dashboard")


@staff_member_required
@require_POST
def unanswered_template(request):
    try:
        services.add_template(request.POST.get("question", ""), request.POST.get("text", ""),
                              request.POST.get("intent", ""))
        messages.success(request, "Template added; retrain to use it.")
    except services.SupportError as exc:
        messages.error(request, str(exc))
    return redirect("support:dashboard")


@staff_member_required
@require_POST
def unanswered_kb(request):
    try:
        services.add_kb_entry(request.POST.get("title", ""), request.POST.get("body", ""))
        messages.success(request, "KB entry added; retrain to use it.")
    except (services.SupportError, ingest.IngestError) as exc:
        messages.error(request, str(exc))
    return redirect("support:dashboard")


@staff_member_required
def widget_keys(request):
    """The keys, and a form to create one."""
    form = WidgetKeyForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            key = form.save()
            messages.success(request, f"Widget key {key.name} created.")
            return redirect("support:widget-keys")
        messages.error(request, "The key was not created; see the form.")
    return render(request, "support/widget_keys.html", {
        "keys": WidgetKey.objects.order_by("-active", "name"), "form": form,
        "server_origin": f"{request.scheme}://{request.get_host()}",
    })


@staff_member_required
def widget_key_edit(request, pk: int):
    """Edit a key: its allowed sites, wording, limits; disable it (it stops answering at once)."""
    key = get_object_or_404(WidgetKey, pk=pk)
    form = WidgetKeyEditForm(request.POST or None, instance=key)
    if request.method == "POST":
        if form.is_valid():
            form.save()
            messages.success(request, f"Widget key {key.name} saved.")
            return redirect("support:widget-keys")
        messages.error(request, "Nothing was saved; see the form.")
    return render(request, "support/widget_key_edit.html", {
        "key": key, "form": form, "server_origin": f"{request.scheme}://{request.get_host()}",
        "conversations": Conversation.objects.filter(widget=key).count(),
    })


@staff_member_required
@require_POST
def widget_key_delete(request, pk: int):
    """Delete a key; its conversations stay in the inbox (without a key)."""
    key = get_object_or_404(WidgetKey, pk=pk)
    name = key.name
    key.delete()
    messages.success(request, f"Widget key {name} deleted; pages that embed it no longer show the chat.")
    return redirect("support:widget-keys")


def widget_demo(request):
    """A host page that embeds the widget with the demo key (public, like any shop page).
    It is served by the widget server itself, so it works on any host and PORT (same origin)."""
    key = WidgetKey.objects.filter(name="demo", active=True).first() or WidgetKey.objects.filter(active=True).first()
    return render(request, "support/widget_demo.html", {"key": key, "debug": settings.DEBUG})


def kb_article(request, slug: str):
    """A help-centre article, public: the widget links its sources here."""
    article = get_object_or_404(KBArticle, slug=slug)
    return render(request, "support/kb_article.html", {"article": article, "chunks": article.chunks.all()})


@staff_member_required
def shop_settings(request):
    """The shop's own values templates ask for ({{Name}}): set, change, delete (POST, then back here)."""
    if request.method == "POST":
        try:
            if request.POST.get("delete"):
                name = shop.delete_value(int(request.POST["delete"]))
                messages.success(request, f"{name} deleted; templates that use it are not sent until it is set.")
            else:
                setting = shop.set_value(request.POST.get("name", ""), request.POST.get("value", ""))
                messages.success(request, f"{setting.name} saved; templates use it from the next message on.")
        except (shop.ShopSettingError, ValueError) as exc:
            messages.error(request, f"Nothing was saved: {exc}")
        return redirect("support:shop-settings")
    return render(request, "support/shop_settings.html", {"wanted": shop.wanted_values()})


@staff_member_required
def answer_templates(request):
    """Every template with its kind (informational or action-claiming) and what it waits for."""
    rows = []
    waiting = {t.pk: w.name for w in shop.waiting_templates() for t in w.templates}
    for tpl in AnswerTemplate.objects.all()[:500]:
        rows.append({"template": tpl, "waiting_for": waiting.get(tpl.pk, "")})
    return render(request, "support/templates.html", {"rows": rows})


@staff_member_required
def answer_template_edit(request, pk: int):
    """Staff set a template's kind and its informational variant (the kind is theirs from then on)."""
    tpl = get_object_or_404(AnswerTemplate, pk=pk)
    form = AnswerTemplateForm(request.POST or None, instance=tpl)
    if request.method == "POST":
        if form.is_valid():
            tpl = form.save(commit=False)
            tpl.kind_set_by = "staff"
            tpl.slots = slot_lib.slots_in(tpl.text)
            tpl.save(update_fields=["text", "slots", "kind", "informational_variant", "kind_set_by"])
            messages.success(request, f"Template {tpl.pk} saved; the bot follows it from the next message on.")
            return redirect("support:templates")
        messages.error(request, "Nothing was saved; see the form.")
    return render(request, "support/template_edit.html", {"template": tpl, "form": form})
