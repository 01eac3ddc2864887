"""API plumbing shared by the apps: error shape and the Jobs endpoints."""
from __future__ import annotations

import logging

from django.db import DatabaseError, DataError, IntegrityError, InterfaceError, OperationalError
from drf_spectacular.utils import extend_schema
from kombu.exceptions import OperationalError as BrokerError
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.common.middleware import _is_cache_outage
from apps.common.models import ApiToken, Job

log = logging.getLogger(__name__)


def exception_handler(exc, context):
    """Every error carries a human message in ``detail``; outages are 503, never 500."""
    if isinstance(exc, BrokerError):
        log.warning("broker unavailable: %s", exc)
        return Response(
            {"detail": "The job queue is unavailable. Anything this request saved is kept and its processing "
                       "starts once the queue is back; try again shortly."},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )
    if _is_cache_outage(exc):
        log.warning("cache unavailable: %s", exc)
        return Response({"detail": "The cache (rate limits, sessions) is unavailable. Try again shortly."},
                        status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "5"})
    if isinstance(exc, DatabaseError | InterfaceError):
        answer = database_error_answer(exc)
        if answer is None:
            return None  # a bug (bad SQL, missing migration): a logged 500, not a fake outage
        code, detail = answer
        return Response({"detail": detail}, status=code, headers={"Retry-After": "5"} if code == 503 else {})
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, ValidationError) and isinstance(response.data, (dict, list)):
        data = response.data if isinstance(response.data, dict) else {"errors": response.data}
        if "detail" not in data:
            data = {"detail": _first_message(data), "errors": data}
        response.data = data
    return response


def database_error_answer(exc: DatabaseError | InterfaceError) -> tuple[int, str] | None:
    """(status, message) for a database error a client can do something about:
    the database unreachable or locked (503), a row stored concurrently (409), a
    value the column cannot hold (400). Anything else is a bug: None."""
    if isinstance(exc, (OperationalError, InterfaceError)):
        log.warning("database unavailable: %s", exc)
        return 503, "The database is unavailable. Try again shortly."
    if isinstance(exc, IntegrityError):
        log.warning("integrity conflict: %s", exc)
        return 409, "The request conflicts with data stored meanwhile (a duplicate?). Reload and try again."
    if isinstance(exc, DataError):
        log.warning("value refused by the database: %s", exc)
        return 400, "A value does not fit (too long, out of range or not valid text)."
    return None


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


class _TokenAppJobs:
    """A token of any app reaches the jobs API, and sees its own app's jobs only; staff see all."""

    @property
    def app_scope(self) -> str | None:
        token = getattr(self.request, "auth", None)
        return token.app if isinstance(token, ApiToken) else None

    def get_queryset(self):
        qs = Job.objects.all()
        if self.app_scope:
            qs = qs.filter(kind__startswith=f"{self.app_scope}.")
        return qs


class JobList(_TokenAppJobs, ListAPIView):
    """Recent jobs, newest first (a token sees its app's jobs); ``?kind=support.train`` filters."""

    serializer_class = JobSerializer

    def get_queryset(self):
        qs = super().get_queryset()
        kind = self.request.query_params.get("kind")
        return qs.filter(kind=kind) if kind else qs


class JobDetail(_TokenAppJobs, RetrieveAPIView):
    serializer_class = JobSerializer

    @extend_schema(summary="One job's state and progress")
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
