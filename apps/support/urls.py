from django.urls import path

from apps.support import api, views, widget_api

app_name = "support"
urlpatterns = [
    # Staff pages
    path("", views.dashboard, name="dashboard"),
    path("metrics/", views.metrics_partial, name="metrics"),
    path("inbox/", views.inbox, name="inbox"),
    path("inbox/list/", views.inbox_list, name="inbox-list"),
    path("inbox/<id:pk>/", views.conversation, name="conversation"),
    path("inbox/<id:pk>/messages/", views.conversation_messages, name="conversation-messages"),
    path("inbox/<id:pk>/reply/", views.conversation_reply, name="conversation-reply"),
    path("inbox/<id:pk>/assist/", views.conversation_assist, name="conversation-assist"),
    path("inbox/<id:pk>/close/", views.conversation_close, name="conversation-close"),
    path("upload/transcripts/", views.upload_transcripts, name="upload-transcripts"),
    path("upload/kb/", views.upload_kb, name="upload-kb"),
    path("train/", views.train, name="train"),
    path("versions/<id:version>/promote/", views.promote, name="promote"),
    path("versions/rollback/", views.rollback, name="rollback"),
    path("threshold/", views.set_threshold, name="threshold"),
    path("clusters/<id:pk>/name/", views.name_cluster, name="cluster-name"),
    path("unanswered/template/", views.unanswered_template, name="unanswered-template"),
    path("unanswered/kb/", views.unanswered_kb, name="unanswered-kb"),
    path("widget-keys/", views.widget_keys, name="widget-keys"),
    path("widget-demo/", views.widget_demo, name="widget-demo"),
    path("kb/<slug:slug>/", views.kb_article, name="kb-article"),
    # Staff / token API
    path("api/conversations/", api.ConversationList.as_view(), name="api-conversations"),
    path("api/conversations/<id:pk>/", api.ConversationDetail.as_view(), name="api-conversation"),
    path("api/conversations/<id:pk>/messages/", api.ConversationMessages.as_view(), name="api-messages"),
    path("api/conversations/<id:pk>/reply/", api.AgentReply.as_view(), name="api-agent-reply"),
    path("api/conversations/<id:pk>/close/", api.CloseConversation.as_view(), name="api-close"),
    path("api/conversations/<id:pk>/assist/", api.Assist.as_view(), name="api-assist"),
    path("api/messages/<id:pk>/feedback/", api.MessageFeedback.as_view(), name="api-feedback"),
    path("api/answer/", api.Answer.as_view(), name="api-answer"),
    path("api/ingest/transcripts/", api.IngestTranscripts.as_view(), name="api-ingest-transcripts"),
    path("api/ingest/kb/", api.IngestKB.as_view(), name="api-ingest-kb"),
    path("api/train/", api.Train.as_view(), name="api-train"),
    path("api/models/", api.ModelVersions.as_view(), name="api-models"),
    path("api/models/<id:version>/promote/", api.PromoteVersion.as_view(), name="api-promote"),
    path("api/models/rollback/", api.RollbackVersion.as_view(), name="api-rollback"),
    path("api/metrics/", api.Metrics.as_view(), name="api-metrics"),
    # Public widget endpoints (widget key + origin check + rate limits)
    path("api/widget/<str:key>/config/", widget_api.config, name="widget-config"),
    path("api/widget/<str:key>/conversations/", widget_api.conversations, name="widget-conversations"),
    path("api/widget/<str:key>/conversations/<uuid:conversation_id>/messages/", widget_api.messages,
         name="widget-messages"),
    path("api/widget/<str:key>/conversations/<uuid:conversation_id>/agent/", widget_api.request_agent,
         name="widget-agent"),
    path("api/widget/<str:key>/messages/<id:message_id>/feedback/", widget_api.feedback, name="widget-feedback"),
]
