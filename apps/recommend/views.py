"""Staff dashboard: model versions and metrics, user and item lookup, training jobs."""
from __future__ import annotations

import json

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.common.jobs import enqueue
from apps.common.models import Job
from apps.common.staff import staff_member_required
from apps.recommend import services, tasks
from apps.recommend.services import RecommendError

SYSTEMS = ["popularity", "text_only", "item_knn", "ease", "two_tower", "model"]


def _chart_data(versions) -> dict:
    """Per version: recall@10 and nDCG@10 of the model and of each baseline measured in the same run."""
    labels, series = [], {f"{s} {m}": [] for s in SYSTEMS for m in ("recall@10", "ndcg@10")}
    for v in reversed(versions[:12]):  # oldest first on the x axis
        labels.append(f"v{v.version}")
        systems = (v.metrics or {}).get("systems", {})
        for s in SYSTEMS:
            for m in ("recall@10", "ndcg@10"):
                val = systems.get(s, {}).get(m)
                series[f"{s} {m}"].append(round(val, 4) if isinstance(val, int | float) else None)
    return {"labels": labels, "series": series}


def _row(m: dict) -> dict:
    """Template-friendly names: Django variables cannot contain '@'."""
    flag = m.get("baselines") or {}
    return {"recall": m.get("recall@10"), "ndcg": m.get("ndcg@10"), "auc": m.get("auc"), "coverage": m.get("coverage"),
            "beats": flag.get("ok"), "behind": ", ".join(flag.get("behind", []))}


@staff_member_required
def dashboard(request):
    versions = services.model_versions()
    current = versions[0] if versions else None
    rows = [{"version": v.version, "created_at": v.created_at, "metrics": v.metrics or {}, **_row(v.metrics or {})}
            for v in versions[:12]]
    systems = (current.metrics or {}).get("systems", {}) if current else {}
    return render(request, "recommend/dashboard.html", {
        "summary": services.catalogue_summary(),
        "versions": rows,
        "current": rows[0] if rows else None,
        "current_systems": [{"name": name, **_row(m)} for name, m in systems.items()],
        "chart": json.dumps(_chart_data(versions)),
        "jobs": Job.objects.filter(kind__startswith="recommend.")[:8],
    })


@staff_member_required
def user_lookup(request):
    """htmx partial: a user's history and recommendations with reasons."""
    user_id = (request.GET.get("user_id") or "").strip()
    ctx: dict = {"user_id": user_id}
    if user_id:
        try:
            history = services.user_history(user_id, limit=30)
            ctx["history"] = history.events
            ctx["recs"] = services.recommend(user_id, k=10)
        except RecommendError as exc:
            ctx["error"] = exc.detail
    else:
        ctx["error"] = "Enter a user id."
    return render(request, "recommend/_user.html", ctx)


@staff_member_required
def item_lookup(request):
    """htmx partial: an item and its nearest live items."""
    item_id = (request.GET.get("item_id") or "").strip()
    ctx: dict = {"item_id": item_id}
    try:
        ctx["result"] = services.similar_items(item_id, 10) if item_id else None
        if not item_id:
            ctx["error"] = "Enter an item id."
    except RecommendError as exc:
        ctx["error"] = exc.detail
    return render(request, "recommend/_item.html", ctx)


@staff_member_required
@require_POST
def start_training(request):
    job = enqueue(tasks.train_recommender, "recommend.train", user=request.user)
    messages.success(request, f"Queued training job #{job.pk}.")
    return redirect("recommend:dashboard")


@staff_member_required
@require_POST
def upload_catalogue(request):
    upload = request.FILES.get("file")
    if upload is None:
        messages.error(request, "Choose a CSV or JSON file.")
        return redirect("recommend:dashboard")
    try:
        rows = services.parse_catalogue_file(upload.read(), upload.name or "")
        result = services.import_items(rows, user=request.user)
    except RecommendError as exc:
        messages.error(request, f"Nothing imported: {exc.detail}")
    else:
        messages.success(request, "Imported: " + ", ".join(f"{v} {k}" for k, v in result.items() if k != "job")
                         + (f"; indexing job #{result['job']}" if result.get("job") else ""))
    return redirect("recommend:dashboard")
