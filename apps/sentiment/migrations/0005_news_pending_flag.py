"""NewsItem.pending: set on ingest, cleared when a classification is stored; the rows
already classified are cleared here, so only the truly pending stay in the index."""
from django.db import migrations, models


def clear_classified(apps, schema_editor):
    NewsItem = apps.get_model("sentiment", "NewsItem")
    NewsItem.objects.filter(classification__isnull=False).update(pending=False)


class Migration(migrations.Migration):
    dependencies = [
        ("sentiment", "0004_merge_branches"),
    ]

    operations = [
        migrations.AddField(
            model_name="newsitem",
            name="pending",
            field=models.BooleanField(default=True, editable=False),
        ),
        migrations.RunPython(clear_classified, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="newsitem",
            index=models.Index(condition=models.Q(("pending", True)), fields=["published_at", "id"],
                               name="sentiment_news_pending"),
        ),
    ]
