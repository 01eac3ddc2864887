"""Support API for staff sessions and support-scoped API tokens: the inbox
(conversations, agent replies), stateless answers, ingest, training and model
versions. The public widget endpoints live in ``widget_api``."""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import BaseParser, FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.jobs import enqueue
from apps.common.jsonparse import StrictCharField
from apps.support import handoff, ingest, services, tasks
from apps.support.models import Conversation, Message
from apps.support.widget_api import conversation_json

OBJ = OpenApiTypes.OBJECT  # responses are documented in each view's summary


class SupportAPIView(APIView):
    app_scope = "support"


def _user(request):
    return request.user if getattr(request.user, "pk", None) else None


def _fail(exc: Exception):
    raise ValidationError({"detail": str(exc)}) from exc


class TextSerializer(serializers.Serializer):
    text = StrictCharField(max_length=services.MAX_MESSAGE_CHARS, trim_whitespace=True)


class ConversationListSerializer(serializers.ModelSerializer):
    n_messages = serializers.IntegerField(read_only=True)

    class Meta:
        model = Conversation
        fields = ["id", "public_id", "status", "visitor_id", "origin", "page_url", "created_at", "updated_at",
                  "handed_off_at", "handoff_reason", "first_agent_reply_at", "closed_at", "csat_rating",
                  "csat_comment", "n_messages"]


class ConversationList(SupportAPIView):
    @extend_schema(responses=OBJ, summary="Conversations, waiting for an agent first; ?status= open | pending | "
                                          "resolved or one state (waiting, agent, bot, closed); ?origin= filters")
    def get(self, request):
        st = request.query_params.get("status")
        allowed = [*handoff.INBOX_VIEWS, *Conversation.Status.values]
        if st and st not in allowed:
            raise ValidationError({"detail": f"status must be one of {', '.join(allowed)}"})
        rows = handoff.inbox(st, request.query_params.get("origin") or None)[:200]
        return Response({"results": ConversationListSerializer(rows, many=True).data})

    @extend_schema(request=None, responses=OBJ, summary="Start a conversation (server-side clients; browsers use the widget endpoints)")
    def post(self, request):
        conv = Conversation.objects.create(origin="api")
        return Response({"id": conv.pk, **conversation_json(conv)}, status=status.HTTP_201_CREATED)


class ConversationDetail(SupportAPIView):
    @extend_schema(operation_id="support_api_conversation_detail", responses=OBJ, summary="A conversation with its messages; ?since=<message id> for newer ones only")
    def get(self, request, pk: int):
        conv = get_object_or_404(Conversation, pk=pk)
        try:
            since = int(request.query_params.get("since") or 0)
        except ValueError as exc:
            raise ValidationError({"detail": "since must be a message id"}) from exc
        return Response({"id": conv.pk, **conversation_json(conv, since)})


class ConversationMessages(SupportAPIView):
    @extend_schema(responses=OBJ, request=TextSerializer, summary="Post a customer message; returns the bot's reply")
    def post(self, request, pk: int):
        conv = get_object_or_404(Conversation, pk=pk)
        s = TextSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        try:
            reply = services.answer_message(conv, s.validated_data["text"])
        except services.SupportError as exc:
            _fail(exc)
        conv.refresh_from_db()
        return Response({"reply": reply.as_dict(), "status": conv.status}, status=status.HTTP_201_CREATED)


class AgentReply(SupportAPIView):
    @extend_schema(responses=OBJ, request=TextSerializer, summary="An agent's reply; the visitor sees it on the next poll")
    def post(self, request, pk: int):
        conv = get_object_or_404(Conversation, pk=pk)
        s = TextSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        msg = handoff.agent_reply(conv, s.validated_data["text"], _user(request))
        return Response({"id": msg.pk, "role": msg.role, "text": msg.text, "status": conv.status},
                        status=status.HTTP_201_CREATED)


class CloseConversation(SupportAPIView):
    @extend_schema(request=None, responses=OBJ)
    def post(self, request, pk: int):
        conv = handoff.close_conversation(get_object_or_404(Conversation, pk=pk), _user(request))
        return Response({"id": conv.pk, "status": conv.status})


class Answer(SupportAPIView):
    @extend_schema(responses=OBJ, request=TextSerializer, summary="The bot's answer to one message, without a conversation")
    def post(self, request):
        s = TextSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        return Response(services.compose_reply(s.validated_data["text"]).as_dict())


class AssistSerializer(serializers.Serializer):
    draft = StrictCharField(max_length=2000, required=False, allow_blank=True, default="")


class Assist(SupportAPIView):
    @extend_schema(responses=OBJ, request=AssistSerializer, summary="Agent-assist: template suggestions and a draft completion")
    def post(self, request, pk: int):
        conv = get_object_or_404(Conversation, pk=pk)
        s = AssistSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        return Response(services.agent_assist(conv, s.validated_data["draft"]))


def _check_size(data: bytes) -> None:
    if len(data) > settings.AIGC_MAX_UPLOAD_BYTES:
        raise ValidationError({"detail": f"the upload is larger than {settings.AIGC_MAX_UPLOAD_BYTES} bytes"})


@dataclass
class QueuedImport:
    """What an upload led to: a job, or none when every pair was imported before."""

    job: object | None
    pairs_new: int
    pairs_known: int

    @property
    def message(self) -> str:
        if self.job is None:
            return f"Already imported: all {self.pairs_known} question/answer pairs of this file are stored; 0 added."
        known = f" ({self.pairs_known} already imported are skipped)" if self.pairs_known else ""
        return f"Import of {self.pairs_new} new question/answer pairs{known} queued as job #{self.job.pk}."

    def as_dict(self) -> dict:
        return {"job": self.job.pk if self.job else None, "state": self.job.state if self.job else "skipped",
                "pairs_new": self.pairs_new, "pairs_known": self.pairs_known, "detail": self.message}


def queue_transcripts(data: bytes, filename: str, user=None) -> QueuedImport:
    """Check the whole file now (line-numbered errors before anything is queued), then queue
    the import of the pairs not imported before (none new: nothing is queued)."""
    _check_size(data)
    _turns, pairs = ingest.validate_transcripts(data, filename)
    hashes = {ingest.pair_hash(p.conversation, p.question, p.answer) for p in pairs}
    known = len(ingest.known_pairs(pairs))
    if known == len(hashes):
        return QueuedImport(None, 0, len(pairs))
    name = services.store_upload(data, ".csv" if filename.lower().endswith(".csv") else ".jsonl")
    job = enqueue(tasks.ingest_transcripts, "support.ingest", user=user,
                  params={"filename": filename, "bytes": len(data)}, upload=name, filename=filename)
    return QueuedImport(job, len(hashes) - known, len(pairs) - (len(hashes) - known))


def queue_kb(files: list[tuple[str, bytes]], user=None):
    docs = []
    for n, d in files:  # refused, not stored with replacement characters
        try:
            text = d.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ingest.IngestError([f"{n}: not UTF-8 text (byte {exc.start}); save it as UTF-8"]) from exc
        if "\x00" in text:
            raise ingest.IngestError([f"{n}: contains a NUL character"])
        docs.append(ingest.Document(name=n, text=text))
    for _name, d in files:
        _check_size(d)
    for doc in docs:  # same checks the job makes
        if not ingest.split_markdown(doc.text)[1]:
            raise ingest.IngestError([f"{doc.name}: no text"])
    uploads = [[services.store_upload(d, ".md"), n] for n, d in files]
    return enqueue(tasks.ingest_kb, "support.kb", user=user, params={"files": [n for n, _ in files]},
                   uploads=uploads)


class RawBodyParser(BaseParser):
    """Any other content type: the body as bytes (a CSV or JSONL file posted as is)."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None) -> bytes:
        return stream.read() if stream is not None else b""


class IngestTranscripts(SupportAPIView):
    parser_classes = [MultiPartParser, FormParser, RawBodyParser]

    @extend_schema(request=OpenApiTypes.BINARY, responses=OBJ, summary="Import transcripts: multipart 'file' (CSV/JSONL) or a raw body; returns the job (202)")
    def post(self, request):
        upload = request.FILES.get("file")
        if upload is not None:
            data, filename = upload.read(), upload.name
        else:
            data = request.data if isinstance(request.data, bytes) else b""
            filename = "upload.csv" if "csv" in (request.content_type or "") else "upload.jsonl"
        if not data:
            raise ValidationError({"detail": "send the transcripts as a 'file' field or as the request body"})
        try:
            queued = queue_transcripts(data, filename, _user(request))
        except ingest.IngestError as exc:
            raise ValidationError({"detail": str(exc), "errors": exc.errors}) from exc
        return Response(queued.as_dict(),
                        status=status.HTTP_202_ACCEPTED if queued.job else status.HTTP_200_OK)


class KBArticleSerializer(serializers.Serializer):
    title = StrictCharField(max_length=200)
    body = StrictCharField(max_length=200_000)
    url = StrictCharField(max_length=300, required=False, allow_blank=True, default="")


class KBSerializer(serializers.Serializer):
    articles = KBArticleSerializer(many=True, allow_empty=False)


class IngestKB(SupportAPIView):
    @extend_schema(responses=OBJ, request=KBSerializer, summary="Import KB articles: multipart 'files' (markdown/text) or JSON")
    def post(self, request):
        files = [(f.name, f.read()) for f in request.FILES.getlist("files") or request.FILES.getlist("file")]
        if not files:
            s = KBSerializer(data=request.data)
            s.is_valid(raise_exception=True)
            files = [(a["title"], f"# {a['title']}\n\n{a['body']}".encode()) for a in s.validated_data["articles"]]
        try:
            job = queue_kb(files, _user(request))
        except ingest.IngestError as exc:
            raise ValidationError({"detail": str(exc), "errors": exc.errors}) from exc
        return Response({"job": job.pk, "state": job.state}, status=status.HTTP_202_ACCEPTED)


class Train(SupportAPIView):
    @extend_schema(request=None, responses=OBJ, summary="Train a new bot version (queue 'train'); returns the job (202)")
    def post(self, request):
        job = enqueue(tasks.train_support, "support.train", user=_user(request))
        return Response({"job": job.pk, "state": job.state}, status=status.HTTP_202_ACCEPTED)


def _version_json(mv, current: int | None) -> dict:
    m = mv.metrics or {}
    return {"version": mv.version, "created_at": str(mv.created_at), "current": mv.version == current,
            "metrics": {k: v for k, v in m.items() if k not in ("curve", "calibration_answers")}}


class ModelVersions(SupportAPIView):
    @extend_schema(responses=OBJ, summary="Trained bot versions, newest first")
    def get(self, request):
        cur = services.current_version()
        return Response({"current": cur.version if cur else None,
                         "versions": [_version_json(v, cur.version if cur else None) for v in services.versions()]})


class PromoteVersion(SupportAPIView):
    @extend_schema(request=None, responses=OBJ)
    def post(self, request, version: int):
        try:
            mv = services.promote_version(version)
        except services.VersionNotFound as exc:
            raise NotFound(str(exc)) from exc
        except services.SupportError as exc:
            _fail(exc)
        return Response({"current": mv.version})


class RollbackVersion(SupportAPIView):
    @extend_schema(request=None, responses=OBJ)
    def post(self, request):
        try:
            mv = services.rollback_version()
        except services.SupportError as exc:
            _fail(exc)
        return Response({"current": mv.version})


class Metrics(SupportAPIView):
    @extend_schema(responses=OBJ, summary="Containment, hand-off rate, ratings, top intents, daily series")
    def get(self, request):
        return Response(services.dashboard_metrics())


class MessageFeedback(SupportAPIView):
    @extend_schema(request=None, responses=OBJ)
    def post(self, request, pk: int):
        msg = get_object_or_404(Message, pk=pk)
        try:
            fb = services.rate_message(msg, request.data.get("rating"))
        except services.SupportError as exc:
            _fail(exc)
        return Response({"message_id": msg.pk, "rating": fb.rating})
