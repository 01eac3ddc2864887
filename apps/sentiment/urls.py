from django.urls import path

from apps.sentiment import api, views

app_name = "sentiment"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("feed/", views.feed_partial, name="feed"),
    path("alerts/", views.alerts_partial, name="alerts"),
    path("timeline.json", views.timeline_data, name="timeline"),
    path("news/<int:pk>/label/", views.correct_label, name="label"),
    path("alerts/<int:pk>/", views.alert_detail, name="alert"),
    path("alerts/<int:pk>/acknowledge/", views.alert_acknowledge, name="alert-acknowledge"),
    path("alerts/<int:pk>/silence/", views.alert_silence, name="alert-silence"),
    path("rules/", views.rules_page, name="rules"),
    path("rules/preview/", views.rule_preview, name="rule-preview"),
    path("rules/<int:pk>/", views.rules_page, name="rule-edit"),
    path("rules/<int:pk>/delete/", views.rule_delete, name="rule-delete"),
    path("webhooks/", views.webhooks_page, name="webhooks"),
    path("webhooks/<int:pk>/", views.webhook_detail, name="webhook"),
    path("webhooks/<int:pk>/resend/", views.webhook_resend, name="webhook-resend"),
    path("webhooks/<int:pk>/toggle/", views.webhook_toggle, name="webhook-toggle"),
    path("sources/", views.sources_page, name="sources"),
    path("train/", views.start_training, name="train"),
    # API (token scope "sentiment")
    path("api/news/", api.NewsList.as_view(), name="api-news"),
    path("api/news/csv/", api.NewsCsvUpload.as_view(), name="api-news-csv"),
    path("api/news/<int:pk>/label/", api.NewsLabel.as_view(), name="api-news-label"),
    path("api/trends/", api.TrendList.as_view(), name="api-trends"),
    path("api/rules/", api.RuleList.as_view(), name="api-rules"),
    path("api/rules/<int:pk>/", api.RuleDetail.as_view(), name="api-rule"),
    path("api/alerts/", api.AlertList.as_view(), name="api-alerts"),
    path("api/webhooks/", api.SubscriptionList.as_view(), name="api-webhooks"),
    path("api/webhooks/<int:pk>/", api.SubscriptionDetail.as_view(), name="api-webhook"),
    path("api/webhooks/<int:pk>/deliveries/", api.DeliveryList.as_view(), name="api-webhook-deliveries"),
    path("api/webhooks/<int:pk>/resend/", api.SubscriptionResend.as_view(), name="api-webhook-resend"),
    path("api/train/", api.TrainStart.as_view(), name="api-train"),
    path("api/model/", api.ModelVersions.as_view(), name="api-model"),
]
