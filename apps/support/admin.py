from django.contrib import admin

from apps.support import models


@admin.register(models.WidgetKey)
class WidgetKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "public_key", "allowed_origins", "rate_limit_per_minute", "active"]


@admin.register(models.BotSettings)
class BotSettingsAdmin(admin.ModelAdmin):
    list_display = ["threshold", "kb_min_score", "updated_at"]


class MessageInline(admin.TabularInline):
    model = models.Message
    extra = 0
    fields = ["role", "text", "intent", "confidence", "answer_kind", "created_at"]
    readonly_fields = fields


@admin.register(models.Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "handoff_reason", "origin", "visitor_id", "widget", "csat_rating", "updated_at"]
    list_filter = ["status"]
    inlines = [MessageInline]


@admin.register(models.AnswerTemplate)
class AnswerTemplateAdmin(admin.ModelAdmin):
    list_display = ["id", "intent", "kind", "kind_set_by", "uses", "source", "text"]
    list_filter = ["kind", "intent", "source"]
    search_fields = ["text", "informational_variant"]

    def save_model(self, request, obj, form, change):
        if {"kind", "informational_variant"} & set(form.changed_data):
            obj.kind_set_by = "staff"  # the import no longer decides this template's kind
        super().save_model(request, obj, form, change)


@admin.register(models.ShopSetting)
class ShopSettingAdmin(admin.ModelAdmin):
    list_display = ["name", "value", "updated_at"]
    search_fields = ["name", "value"]


@admin.register(models.TranscriptPair)
class TranscriptPairAdmin(admin.ModelAdmin):
    list_display = ["id", "conversation_ref", "intent", "template", "question"]
    search_fields = ["question", "answer"]
    list_filter = ["intent"]


@admin.register(models.IntentCluster)
class IntentClusterAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "size"]


class KBChunkInline(admin.TabularInline):
    model = models.KBChunk
    extra = 0


@admin.register(models.KBArticle)
class KBArticleAdmin(admin.ModelAdmin):
    list_display = ["title", "slug", "updated_at"]
    search_fields = ["title", "body"]
    inlines = [KBChunkInline]


@admin.register(models.Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    list_display = ["message", "rating", "created_at"]
