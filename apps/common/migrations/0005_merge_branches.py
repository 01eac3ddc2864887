from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("common", "0003_job_coalesce_key"),
        ("common", "0004_user_preference"),
    ]
    operations = []
