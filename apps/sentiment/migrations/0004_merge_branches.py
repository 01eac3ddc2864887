from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("sentiment", "0003_scale_free_detector"),
        ("sentiment", "0003_webhook_secret_rotation"),
    ]
    operations = []
