"""Sentiment REST API (token scope "sentiment" or a staff session). Thin: parse,
call a service, answer. Errors carry "detail"."""
from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.jobs import enqueue
from apps.common.jsonparse import StrictCharField
from apps.sentiment import conf, services, webhooks
from apps.sentiment.models import (
    SENTIMENTS,
    Alert,
    AlertRule,
    BucketSize,
    Delivery,
    NewsItem,
    NewsSource,
    Scope,
    TrendBucket,
    WebhookSubscription,
)


class SentimentAPIView(APIView):
    app_scope = "sentiment"


def queue_classification(result: services.IngestResult, user=None) -> int | None:
    """The classification job these items will be classified by (joined if one is queued)."""
    if not result.created:
        return None
    from apps.sentiment.tasks import queue_classification as queue

    return queue(user=user).pk


def check_backpressure() -> None:
    """Refuse new news (429 + Retry-After) while the classification backlog is over its limit."""
    from django.conf import settings

    from apps.common.outages import Overloaded

    limit = settings.AIGC_INGEST_PENDING_LIMIT
    if limit and services.pending_depth() >= limit:
        raise Overloaded(f"{services.pending_depth()} news items are waiting for classification (limit {limit}); "
                         "new items are refused until the backlog drains. Retry later.", retry_after_s=10)


def _user(request):
    u = request.user
    return u if getattr(u, "pk", None) else None


# --- news ---------------------------------------------------------------------

class ClassificationSerializer(serializers.Serializer):
    topic = serializers.CharField()
    sentiment = serializers.CharField()
    topic_confidence = serializers.FloatField()
    sentiment_confidence = serializers.FloatField()
    probabilities = serializers.JSONField()
    model_version = serializers.IntegerField(allow_null=True)
    corrected_at = serializers.DateTimeField(allow_null=True)


class NewsItemSerializer(serializers.ModelSerializer):
    source = serializers.CharField(source="source.name")
    classification = serializers.SerializerMethodField()

    class Meta:
        model = NewsItem
        fields = ["id", "source", "url", "headline", "body", "published_at", "ingested_at", "tickers",
                  "classification"]

    def get_classification(self, obj) -> dict | None:
        cls = getattr(obj, "classification", None)
        return ClassificationSerializer(cls).data if cls else None


class IngestBatchSerializer(serializers.Serializer):
    source = StrictCharField(required=False, default="api", max_length=200)
    items = serializers.ListField(child=serializers.JSONField(), allow_empty=False,
                                  max_length=conf.MAX_BATCH_ITEMS)


class NewsList(generics.ListAPIView, SentimentAPIView):
    """News items, newest first; filters: ?topic= ?sentiment= ?ticker= ?unclassified=1.

    POST a batch: ``{"source": "wire", "items": [{"url", "headline", "body", "published_at"}, ...]}``
    (at most 1000). Duplicates (same url or same headline+body) are skipped;
    bad items are listed with their index and reason; the rest are stored and
    queued for classification."""

    serializer_class = NewsItemSerializer

    def get_queryset(self):
        qs = NewsItem.objects.select_related("source", "classification")
        p = self.request.query_params
        if topic := p.get("topic"):
            qs = qs.filter(classification__topic=topic)
        if sentiment := p.get("sentiment"):
            qs = qs.filter(classification__sentiment=sentiment)
        if p.get("unclassified") in {"1", "true"}:
            qs = qs.filter(pending=True)
        if ticker := p.get("ticker"):
            ids = [i for i, t in qs.values_list("id", "tickers")[:5000] if ticker.upper() in (t or [])]
            qs = qs.filter(id__in=ids)
        return qs

    @extend_schema(request=IngestBatchSerializer, responses={201: dict, 200: dict})
    def post(self, request):
        data = request.data
        if isinstance(data, list):
            data = {"items": data}
        ser = IngestBatchSerializer(data=data)
        ser.is_valid(raise_exception=True)
        check_backpressure()
        with transaction.atomic():
            source = services.source_named(ser.validated_data["source"], NewsSource.Kind.API)
            result = services.ingest_items(ser.validated_data["items"], source)
            job_id = queue_classification(result, _user(request))
        body = {**result.as_dict(), "classify_job": job_id}
        return Response(body, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


class NewsCsvUpload(SentimentAPIView):
    """Upload a CSV (multipart field ``file``): url, headline, body, published_at,
    optional topic and sentiment (gold labels for training). The file is checked
    (size, UTF-8, columns) and its import queued as a job: 202 with ``job``, to poll
    on ``/sentiment/api/jobs/<id>/``; the job's result has the batch answer's counts."""

    parser_classes = [MultiPartParser]

    @extend_schema(request={"multipart/form-data": {"type": "object", "properties": {
        "file": {"type": "string", "format": "binary"}, "source": {"type": "string"}}}}, responses={202: dict})
    def post(self, request):
        upload = request.FILES.get("file")
        if upload is None:
            raise ValidationError({"detail": "send the CSV in a multipart field named 'file'"})
        if upload.size > conf.MAX_CSV_BYTES:
            return Response({"detail": f"the CSV is larger than {conf.MAX_CSV_BYTES // (1024 * 1024)} MB"},
                            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        check_backpressure()
        try:
            with transaction.atomic():
                job, rows = services.queue_csv_import(upload.read(), request.data.get("source") or "csv upload",
                                                      _user(request))
        except services.IngestError as exc:
            raise ValidationError({"detail": str(exc)}) from exc
        return Response({"job": job.pk, "state": job.state, "rows": rows}, status=status.HTTP_202_ACCEPTED)


class LabelSerializer(serializers.Serializer):
    topic = StrictCharField(required=False)
    sentiment = serializers.ChoiceField(choices=SENTIMENTS, required=False)

    def validate_topic(self, value):
        if value not in conf.topics():
            raise serializers.ValidationError(f"must be one of {', '.join(conf.topics())}")
        return value

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("give topic and/or sentiment")
        return attrs


class NewsLabel(SentimentAPIView):
    """Correct an item's labels; the correction is used by the next training run."""

    @extend_schema(request=LabelSerializer, responses={200: NewsItemSerializer})
    def post(self, request, pk: int):
        item = generics.get_object_or_404(NewsItem, pk=pk)
        ser = LabelSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        try:
            services.correct_label(item, _user(request), **ser.validated_data)
        except ValueError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        item = NewsItem.objects.select_related("source", "classification").get(pk=pk)
        return Response(NewsItemSerializer(item).data)


# --- trends -------------------------------------------------------------------

class TrendSerializer(serializers.ModelSerializer):
    negative_share = serializers.FloatField(read_only=True)
    mean_sentiment = serializers.FloatField(read_only=True)

    class Meta:
        model = TrendBucket
        fields = ["scope", "key", "size", "start", "count", "negative_count", "negative_share",
                  "mean_sentiment"]


class TrendList(generics.ListAPIView, SentimentAPIView):
    """Trend buckets: ?scope=topic|company ?key= ?size=5m|1h|1d (default 1h) ?since=ISO time."""

    serializer_class = TrendSerializer

    def get_queryset(self):
        p = self.request.query_params
        size = p.get("size", BucketSize.H1)
        if size not in BucketSize.values:
            raise ValidationError({"detail": f"size must be one of {', '.join(BucketSize.values)}"})
        qs = TrendBucket.objects.filter(size=size).order_by("start", "scope", "key")
        if scope := p.get("scope"):
            if scope not in Scope.values:
                raise ValidationError({"detail": "scope must be topic or company"})
            qs = qs.filter(scope=scope)
        if key := p.get("key"):
            qs = qs.filter(key=key)
        if since := p.get("since"):
            try:
                qs = qs.filter(start__gte=services.parse_published(since))
            except ValueError as exc:
                raise ValidationError({"detail": str(exc)}) from exc
        return qs


# --- rules and alerts -----------------------------------------------------------

# Sane bounds of the detector's settings (the rules page uses the same ones).
RULE_LIMITS = {"history_days": (2, 90), "quantile": (0.5, 0.999), "ratio": (1.0, 100.0), "rearm_hours": (0, 24 * 14),
               "growth": (1.05, 1000.0)}

class AlertRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = AlertRule
        fields = ["id", "name", "scope", "key", "metric", "direction", "window", "history_days", "quantile", "ratio",
                  "rearm_hours", "growth", "min_volume", "enabled", "revision", "created_at"]
        read_only_fields = ["created_at", "revision"]

    def validate(self, attrs):
        for name, (lo, hi) in RULE_LIMITS.items():
            value = attrs.get(name)
            if value is not None and not lo <= value <= hi:
                raise serializers.ValidationError({name: f"must be between {lo} and {hi}"})
        scope = attrs.get("scope", getattr(self.instance, "scope", Scope.TOPIC))
        key = attrs.get("key", getattr(self.instance, "key", ""))
        if scope == Scope.TOPIC and key and key not in conf.topics():
            raise serializers.ValidationError({"key": f"topic must be one of {', '.join(conf.topics())}"})
        if scope == Scope.COMPANY and key:
            attrs["key"] = key.upper().lstrip("$")
        return attrs


class RuleList(generics.ListCreateAPIView, SentimentAPIView):
    serializer_class = AlertRuleSerializer
    queryset = AlertRule.objects.all()


class RuleDetail(generics.RetrieveUpdateDestroyAPIView, SentimentAPIView):
    """A rule; an edit that changes the detection resolves its open alerts and restarts it."""

    serializer_class = AlertRuleSerializer
    queryset = AlertRule.objects.all()

    def perform_update(self, serializer):
        from apps.sentiment.alerts import rule_changed

        before = AlertRuleSerializer(serializer.instance).data
        with transaction.atomic():
            rule = serializer.save()
            after = AlertRuleSerializer(rule).data
            rule_changed(rule, {k for k in after if after[k] != before.get(k)})


class AlertSerializer(serializers.ModelSerializer):
    rule_name = serializers.CharField(source="rule.name")
    items = serializers.SerializerMethodField()

    class Meta:
        model = Alert
        fields = ["id", "rule", "rule_name", "scope", "key", "state", "started_at", "fired_at", "resolved_at",
                  "value", "peak_value", "baseline", "peak_ratio", "explanation", "notifications",
                  "acknowledged_at", "silenced_until", "items"]

    def get_items(self, obj) -> list[dict]:
        return [{"id": i.pk, "headline": i.headline, "url": i.url} for i in obj.items.all()[:20]]


class AlertList(generics.ListAPIView, SentimentAPIView):
    """Alerts, newest first; ?state=pending|firing|resolved|cancelled."""

    serializer_class = AlertSerializer

    def get_queryset(self):
        qs = Alert.objects.select_related("rule").prefetch_related("items")
        if state := self.request.query_params.get("state"):
            qs = qs.filter(state=state)
        return qs


# --- webhooks -----------------------------------------------------------------

class SubscriptionSerializer(serializers.ModelSerializer):
    event_types = serializers.ListField(child=StrictCharField(), required=False)
    scopes = serializers.ListField(child=StrictCharField(max_length=60), required=False)

    class Meta:
        model = WebhookSubscription
        # No secret here: it is shown once, in the answer to the create and to the rotate call.
        fields = ["id", "url", "description", "event_types", "scopes", "enabled",
                  "consecutive_failures", "disabled_reason", "disabled_at", "created_at", "secret_rotated_at",
                  "previous_secret_expires_at"]
        read_only_fields = ["enabled", "consecutive_failures", "disabled_reason", "disabled_at",
                            "created_at", "secret_rotated_at", "previous_secret_expires_at"]

    def create(self, validated):
        try:
            return webhooks.create_subscription(
                validated["url"], description=validated.get("description", ""),
                event_types=validated.get("event_types"), scopes=validated.get("scopes"))
        except webhooks.SubscriptionError as exc:
            raise ValidationError({"detail": str(exc)}) from exc


class CreatedSubscriptionSerializer(SubscriptionSerializer):
    secret = serializers.CharField(read_only=True, help_text="whsec_…: shown in this answer only")

    class Meta(SubscriptionSerializer.Meta):
        fields = [*SubscriptionSerializer.Meta.fields, "secret"]


class SubscriptionList(generics.ListCreateAPIView, SentimentAPIView):
    """Webhook subscriptions. The signing secret (whsec_…, verifies with any Standard
    Webhooks library) is in the creation answer only. Private/loopback URLs are refused unless allowed."""

    serializer_class = SubscriptionSerializer
    queryset = WebhookSubscription.objects.all()

    @extend_schema(request=SubscriptionSerializer, responses={201: CreatedSubscriptionSerializer})
    def post(self, request, *args, **kwargs):
        ser = SubscriptionSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        sub = ser.save()
        return Response(CreatedSubscriptionSerializer(sub).data, status=status.HTTP_201_CREATED)


class RotatedSecretSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="the new whsec_… secret: shown in this answer only")
    previous_secret_expires_at = serializers.DateTimeField(
        help_text="until then messages carry a signature with the previous secret too")


class SubscriptionRotateSecret(SentimentAPIView):
    """Give a subscription a new signing secret (answered once, here). The previous
    secret keeps signing beside it for ``AIGC_WEBHOOK_SECRET_GRACE_S`` seconds."""

    @extend_schema(request=None, responses={200: RotatedSecretSerializer})
    def post(self, request, pk: int):
        sub = webhooks.rotate_secret(generics.get_object_or_404(WebhookSubscription, pk=pk))
        return Response({"secret": sub.secret, "previous_secret_expires_at": sub.previous_secret_expires_at})


class SubscriptionDetail(generics.RetrieveDestroyAPIView, SentimentAPIView):
    serializer_class = SubscriptionSerializer
    queryset = WebhookSubscription.objects.all()


class DeliverySerializer(serializers.ModelSerializer):
    event_id = serializers.CharField(source="message.event_id")
    event_type = serializers.CharField(source="message.event_type")
    attempt_log = serializers.SerializerMethodField()

    class Meta:
        model = Delivery
        fields = ["id", "event_id", "event_type", "state", "attempts", "next_attempt_at", "created_at",
                  "finished_at", "attempt_log"]

    def get_attempt_log(self, obj) -> list[dict]:
        return [{"attempt": a.attempt_no, "status": a.status, "response_code": a.response_code,
                 "latency_ms": a.latency_ms, "error": a.error, "at": a.at} for a in obj.attempt_log.all()]


class DeliveryList(generics.ListAPIView, SentimentAPIView):
    """The delivery log of one subscription: each message, its state and every attempt."""

    serializer_class = DeliverySerializer

    def get_queryset(self):
        sub = generics.get_object_or_404(WebhookSubscription, pk=self.kwargs["pk"])  # unknown: 404, not []
        return (Delivery.objects.filter(subscription=sub).select_related("message")
                .prefetch_related("attempt_log").order_by("-created_at", "-id"))


class ResendSerializer(serializers.Serializer):
    delivery_ids = serializers.ListField(child=serializers.IntegerField(), required=False)


class SubscriptionResend(SentimentAPIView):
    """Re-send failed deliveries (all, or ``delivery_ids``) in creation order; re-enables the subscription."""

    @extend_schema(request=ResendSerializer, responses={202: dict})
    def post(self, request, pk: int):
        sub = generics.get_object_or_404(WebhookSubscription, pk=pk)
        ser = ResendSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        ids = webhooks.resend(sub, ser.validated_data.get("delivery_ids"))
        return Response({"resent": ids}, status=status.HTTP_202_ACCEPTED)


# --- jobs -----------------------------------------------------------------------

class TrainStart(SentimentAPIView):
    """Queue a training run on gold labels (queue "train"); returns the job id."""

    @extend_schema(request=None, responses={202: dict})
    def post(self, request):
        from apps.sentiment.tasks import train_sentiment

        job = enqueue(train_sentiment, "sentiment.train", user=_user(request))
        return Response({"job": job.pk}, status=status.HTTP_202_ACCEPTED)


class ModelVersions(SentimentAPIView):
    """Registered versions of sentiment.news with their metrics."""

    @extend_schema(responses={200: dict})
    def get(self, request):
        from apps.common import engine

        reg = engine.registry()
        current = reg.current(conf.MODEL_NAME)
        return Response({
            "name": conf.MODEL_NAME,
            "current": current.version if current else None,
            "versions": [{"version": v.version, "created_at": v.created_at, "metrics": v.metrics}
                         for v in reg.versions(conf.MODEL_NAME)],
        })
