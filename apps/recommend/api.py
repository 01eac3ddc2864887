"""Recommend API (/recommend/api/...): Bearer token scoped to "recommend", or a staff session."""
from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.jobs import enqueue
from apps.common.jsonparse import JSONParser
from apps.recommend import services, tasks
from apps.recommend.services import RecommendError

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
ASYNC_IMPORT_ROWS = 2_000  # larger imports become a Job


def _error(exc: RecommendError) -> Response:
    body = {"detail": exc.detail}
    if exc.errors:
        body["errors"] = exc.errors
    return Response(body, status=exc.status)


class RecommendAPIView(APIView):
    app_scope = "recommend"
    parser_classes = [JSONParser]  # the project's one JSON parser

    def handle_exception(self, exc):
        if isinstance(exc, RecommendError):
            return _error(exc)
        return super().handle_exception(exc)


class ItemUpsertSerializer(serializers.Serializer):
    items = serializers.ListField(child=serializers.DictField(), allow_empty=False,
                                  max_length=services.MAX_IMPORT_ROWS)


class ItemsView(RecommendAPIView):
    """POST: upsert items (JSON) by external_id, all or nothing; {"removed": true} removes one."""

    @extend_schema(responses=OpenApiTypes.OBJECT, request=ItemUpsertSerializer, summary="Upsert catalogue items")
    def post(self, request):
        ser = ItemUpsertSerializer(data=request.data if isinstance(request.data, dict) else {"items": request.data})
        ser.is_valid(raise_exception=True)
        return Response(services.upsert_items(ser.validated_data["items"]).as_dict())


class CatalogueUploadView(RecommendAPIView):
    """POST multipart ``file`` (CSV with a header row, or JSON): import the catalogue."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request={"multipart/form-data": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}},
                   responses=OpenApiTypes.OBJECT, summary="Import a catalogue file (CSV or JSON)")
    def post(self, request):
        upload = request.FILES.get("file")
        if upload is None:
            raise RecommendError("send the catalogue as a multipart field named 'file'")
        if upload.size > MAX_UPLOAD_BYTES:
            raise RecommendError(f"file is {upload.size} bytes; at most {MAX_UPLOAD_BYTES}", status=413)
        rows = services.parse_catalogue_file(upload.read(), upload.name or "")
        if len(rows) > ASYNC_IMPORT_ROWS:
            cleaned = [services.clean_item_row(r, f"row {n}") for n, r in enumerate(rows, start=1)]
            del cleaned  # validated up front so the caller hears about bad rows now
            job = enqueue(tasks.import_catalogue, "recommend.import", params={"rows": len(rows)},
                          user=request.user, rows=rows)
            return Response({"job": job.pk, "rows": len(rows)}, status=status.HTTP_202_ACCEPTED)
        return Response(services.upsert_items(rows).as_dict())


class ItemRemoveView(RecommendAPIView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Remove an item: it is never recommended again")
    def delete(self, request, external_id: str):
        n = services.remove_items([external_id])
        return Response({"removed": n, "item_id": external_id})


class SimilarItemsView(RecommendAPIView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Items similar to one item")
    def get(self, request, external_id: str):
        k = _int_param(request, "k", 10)
        return Response(services.similar_items(external_id, k))


class EventSerializer(serializers.Serializer):
    event_id = serializers.CharField(max_length=100)
    user_id = serializers.CharField(max_length=100)
    item_id = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=["view", "click", "add_to_cart", "purchase", "rating"])
    value = serializers.FloatField(required=False, allow_null=True)
    at = serializers.DateTimeField(required=False)


class EventsView(RecommendAPIView):
    """POST one event object, or {"events": [...]} (at most 1,000). Idempotent by event_id.

    A single event answers 201 (accepted), 200 (duplicate: already stored) or 400 (why).
    A batch answers 200 with a status per event; events that are rejected (unknown
    item id, bad kind...) never block the others."""

    @extend_schema(responses=OpenApiTypes.OBJECT, request=EventSerializer, summary="Record one event or a batch")
    def post(self, request):
        data = request.data
        if isinstance(data, dict) and "events" in data:
            if not isinstance(data["events"], list):
                raise RecommendError("'events' must be a list")
            return Response(services.record_events(data["events"]))
        if not isinstance(data, dict):
            raise RecommendError('send one event object or {"events": [...]}')
        ser = EventSerializer(data=data)
        ser.is_valid(raise_exception=True)
        out = services.record_events([data])
        res = out["results"][0]
        if res["status"] == "rejected":
            raise RecommendError(res["detail"])
        return Response(res, status=201 if res["status"] == "accepted" else 200)


def _int_param(request, name: str, default: int) -> int:
    raw = request.query_params.get(name, request.data.get(name) if isinstance(request.data, dict) else None)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except (TypeError, ValueError) as exc:
        raise RecommendError(f"{name} must be an integer") from exc


class RecommendRequestSerializer(serializers.Serializer):
    user_id = serializers.CharField(max_length=100)
    k = serializers.IntegerField(min_value=1, max_value=services.MAX_K, default=10)
    context_item_ids = serializers.ListField(child=serializers.CharField(max_length=100), required=False,
                                             max_length=services.MAX_CONTEXT_ITEMS)


class RecommendView(RecommendAPIView):
    """Top-k items for a user, each with a reason. Unknown users get popular items."""

    @extend_schema(responses=OpenApiTypes.OBJECT, request=RecommendRequestSerializer, summary="Recommend items for a user")
    def post(self, request):
        ser = RecommendRequestSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        return Response(services.recommend(d["user_id"], d["k"], d.get("context_item_ids")))

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Recommend items for a user (?user_id=&k=)")
    def get(self, request):
        ser = RecommendRequestSerializer(data={"user_id": request.query_params.get("user_id", ""),
                                               "k": request.query_params.get("k", 10)})
        ser.is_valid(raise_exception=True)
        return Response(services.recommend(ser.validated_data["user_id"], ser.validated_data["k"]))


class ScoreRequestSerializer(serializers.Serializer):
    user_id = serializers.CharField(max_length=100)
    candidates = serializers.ListField(help_text='item ids, or {"text": ..., "category"?, "price"?} for new items')
    context_item_ids = serializers.ListField(child=serializers.CharField(max_length=100), required=False)


class ScoreView(RecommendAPIView):
    """Score up to 1,000 candidates (item ids or raw texts) for a user, in the order given."""

    @extend_schema(responses=OpenApiTypes.OBJECT, request=ScoreRequestSerializer, summary="Score candidate items or texts for a user")
    def post(self, request):
        ser = ScoreRequestSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        return Response(services.score(d["user_id"], d["candidates"], d.get("context_item_ids")))


class TrainView(RecommendAPIView):
    @extend_schema(request=None, responses=OpenApiTypes.OBJECT, summary="Queue a training job")
    def post(self, request):
        job = enqueue(tasks.train_recommender, "recommend.train", user=request.user)
        return Response({"job": job.pk, "state": job.state}, status=status.HTTP_202_ACCEPTED)


class ModelView(RecommendAPIView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Model versions and their offline metrics")
    def get(self, request):
        return Response({"versions": [
            {"version": v.version, "created_at": v.created_at, "metrics": v.metrics}
            for v in services.model_versions()
        ]})
