from django.urls import path

from apps.sentiment import api, views

app_name = "sentiment"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("feed/", views.feed_partial, name="feed"),
    path("alerts/", views.alerts_partial, name="alerts"),
    path("timeline.json", views.timeline_data, name="timeline"),
    path("news/<id:pk>/label/", views.correct_label, name="label"),
    path("rules/", views.rules_page, name="rules"),
    path("rules/<id:pk>/", views.rules_page, name="rule-edit"),
    path("rules/<id:pk>/delete/", views.rule_delete, name="rule-delete"),
    path("webhooks/", views.webhooks_page, name="webhooks"),
    path("webhooks/<id:pk>/", views.webhook_detail, name="webhook"),
    path("webhooks/<id:pk>/resend/", views.webhook_resend, name="webhook-resend"),
    path("webhooks/<id:pk>/toggle/", views.webhook_toggle, name="webhook-toggle"),
    path("webhooks/<id:pk>/rotate-secret/", views.webhook_rotate_secret, name="webhook-rotate"),
    path("sources/", views.sources_page, name="sources"),
    path("train/", views.start_training, name="train"),
    # API (token scope "sentiment")
    path("api/news/", api.NewsList.as_view(), name="api-news"),
    path("api/news/csv/", api.NewsCsvUpload.as_view(), name="api-news-csv"),
    path("api/news/<id:pk>/label/", api.NewsLabel.as_view(), name="api-news-label"),
    path("api/trends/", api.TrendList.as_view(), name="api-trends"),
    path("api/rules/", api.RuleList.as_view(), name="api-rules"),
    path("api/rules/<id:pk>/", api.RuleDetail.as_view(), name="api-rule"),
    path("api/alerts/", api.AlertList.as_view(), name="api-alerts"),
    path("api/webhooks/", api.SubscriptionList.as_view(), name="api-webhooks"),
    path("api/webhooks/<id:pk>/", api.SubscriptionDetail.as_view(), name="api-webhook"),
    path("api/webhooks/<id:pk>/deliveries/", api.DeliveryList.as_view(), name="api-webhook-deliveries"),
    path("api/webhooks/<id:pk>/resend/", api.SubscriptionResend.as_view(), name="api-webhook-resend"),
    path("api/webhooks/<id:pk>/rotate-secret/", api.SubscriptionRotateSecret.as_view(), name="api-webhook-rotate"),
    path("api/train/", api.TrainStart.as_view(), name="api-train"),
    path("api/model/", api.ModelVersions.as_view(), name="api-model"),
]
