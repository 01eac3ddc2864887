from django.contrib import admin

from apps.common.models import ApiToken, Job, WorkerHeartbeat


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "state", "progress", "attempts", "created_at", "finished_at")
    list_filter = ("state", "kind")
    readonly_fields = ("result", "error", "params")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "app", "prefix", "owner", "created_at", "last_used_at", "revoked_at")
    list_filter = ("app",)
    readonly_fields = ("prefix", "key_hash", "last_used_at")


admin.site.register(WorkerHeartbeat)
