"""API plumbing shared by the apps: error shape and the Jobs endpoints."""
from __future__ import annotations

import logging

from django.db import DatabaseError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.common import outages
from apps.common.models import ApiToken, Job

log = logging.getLogger(__name__)


def exception_handler(exc, context):
    """Every error carries a human message in ``detail``; outages are 503 (backpressure 429)
    with Retry-After, never 500: the mapping is ``apps.common.outages``."""
    request = context.get("request") if context else None
    answer = outages.answer_for(exc, getattr(request, "path", ""))
    if answer is not None:
        return Response(answer.body(), status=answer.status, headers=answer.headers)
    if isinstance(exc, DatabaseError):
        return None  # a bug (bad SQL, missing migration): a logged 500, not a fake outage
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, ValidationError) and isinstance(response.data, (dict, list)):
        data = response.data if isinstance(response.data, dict) else {"errors": response.data}
        if "detail" not in data:
            data = {"detail": _first_message(data), "errors": data}
        response.data = data
    return response


def _first_message(errors) -> str:
    if isinstance(errors, dict):
        for field, value in errors.items():
            msg = _first_message(value)
            return msg if field in {"non_field_errors", "errors"} else f"{field}: {msg}"
    if isinstance(errors, list) and errors:
        return _first_message(errors[0])
    return str(errors) or "Invalid input."


class JobSerializer(serializers.ModelSerializer):
    duration_s = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = Job
        fields = [
            "id", "kind", "state", "progress", "message", "params", "result", "error",
            "attempts", "created_at", "started_at", "finished_at", "duration_s",
        ]


class AppScopedJobs:
    """An app's API token reaches that app's jobs (kind ``<app>.…``), so every job id
    an app's API returns can be polled with the token that started it; another app's
    token gets 404 for it (not 403: it does not learn the job exists). Staff sessions
    see every job."""

    @property
    def app_scope(self) -> str | None:
        token = getattr(self.request, "auth", None)
        return token.app if isinstance(token, ApiToken) else None

    def get_queryset(self):
        qs = Job.objects.all()
        if scope := self.app_scope:
            qs = qs.filter(kind__startswith=f"{scope}.")
        return qs


class JobList(AppScopedJobs, ListAPIView):
    """Recent jobs, newest first; ``?kind=support.train`` filters."""

    serializer_class = JobSerializer

    def get_queryset(self):
        qs = super().get_queryset()
        kind = self.request.query_params.get("kind")
        return qs.filter(kind=kind) if kind else qs


class JobDetail(AppScopedJobs, RetrieveAPIView):
    serializer_class = JobSerializer

    @extend_schema(summary="One job's state and progress (with the token of the app that started it)")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class AppStatus(RetrieveAPIView):
    """Per-app status: its latest jobs. Reachable with that app's token only."""

    serializer_class = JobSerializer

    def get_app(self) -> str:
        return self.kwargs["app"]

    @property
    def app_scope(self) -> str:
        return self.kwargs.get("app", "")

    @extend_schema(summary="Latest jobs of one app")
    def get(self, request, app: str):
        jobs = Job.objects.filter(kind__startswith=f"{app}.")[:10]
        return Response({"app": app, "jobs": JobSerializer(jobs, many=True).data})
