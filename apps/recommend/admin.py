from django.contrib import admin

from apps.recommend.models import Event, Item


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["external_id", "title", "category", "price", "available", "removed_at", "created_at"]
    list_filter = ["category", "available"]
    search_fields = ["external_id", "title", "description"]


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["event_id", "user_id", "kind", "item", "value", "at"]
    list_filter = ["kind"]
    search_fields = ["user_id", "event_id", "item__external_id"]
    raw_id_fields = ["item"]
    date_hierarchy = "at"
