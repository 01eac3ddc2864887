from django.apps import AppConfig


class SupportConfig(AppConfig):
    name = "apps.support"
    label = "support"

    def ready(self) -> None:
        from corsheaders.signals import check_request_enabled

        from apps.support.widget_cors import widget_origin_allowed

        check_request_enabled.connect(widget_origin_allowed, dispatch_uid="support-widget-cors")
