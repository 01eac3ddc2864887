from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("common", "0003_rate_counter"),
        ("common", "0003_user_preference"),
        ("common", "0003_job_coalesce_key"),
    ]
    operations = []
