from django.contrib import admin

from apps.sentiment import models as m


@admin.register(m.Company)
class CompanyAdmin(admin.ModelAdmin):
    list_display = ["ticker", "name"]
    search_fields = ["ticker", "name"]


@admin.register(m.NewsSource)
class NewsSourceAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "url", "poll_interval_s", "last_polled_at", "last_status", "enabled"]
    list_filter = ["kind", "enabled"]


class ClassificationInline(admin.StackedInline):
    model = m.Classification
    extra = 0


@admin.register(m.NewsItem)
class NewsItemAdmin(admin.ModelAdmin):
    list_display = ["headline", "source", "published_at", "tickers", "gold_topic", "gold_sentiment"]
    list_filter = ["source"]
    search_fields = ["headline", "url"]
    date_hierarchy = "published_at"
    inlines = [ClassificationInline]


@admin.register(m.TrendBucket)
class TrendBucketAdmin(admin.ModelAdmin):
    list_display = ["scope", "key", "size", "start", "count", "negative_count", "sentiment_sum"]
    list_filter = ["scope", "size"]


@admin.register(m.AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ["name", "scope", "key", "metric", "direction", "window", "ratio", "min_volume", "enabled"]


@admin.register(m.Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["rule", "scope", "key", "state", "started_at", "fired_at", "resolved_at", "value", "baseline"]
    list_filter = ["state", "scope"]
    raw_id_fields = ["items"]


@admin.register(m.WebhookSubscription)
class WebhookSubscriptionAdmin(admin.ModelAdmin):
    list_display = ["url", "enabled", "consecutive_failures", "disabled_reason", "created_at"]


class DeliveryInline(admin.TabularInline):
    model = m.Delivery
    extra = 0


@admin.register(m.WebhookMessage)
class WebhookMessageAdmin(admin.ModelAdmin):
    list_display = ["event_id", "event_type", "scope_key", "created_at"]
    inlines = [DeliveryInline]


@admin.register(m.DeliveryAttempt)
class DeliveryAttemptAdmin(admin.ModelAdmin):
    list_display = ["delivery", "attempt_no", "status", "response_code", "latency_ms", "error", "at"]
    list_filter = ["status"]
