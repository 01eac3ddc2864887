"""Celery wiring: settings come from Django's, tasks from each app's tasks.py."""
import os

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# "filesystem://" (the embedded default) means our transport, whose messages appear
# whole (apps/common/fsbroker.py says why kombu's own can lose one).
TRANSPORT_ALIASES["filesystem"] = "apps.common.fsbroker:Transport"

app = Celery("aigc")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
