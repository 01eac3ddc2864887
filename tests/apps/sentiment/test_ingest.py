"""Ingest: dedup by url and content, idempotence, per-item rejection, tickers, CSV, feeds."""
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from apps.common.http import OutboundError
from apps.sentiment import services
from apps.sentiment.models import Company, NewsItem, NewsSource

from .conftest import news

pytestmark = pytest.mark.django_db


def test_it_dedups_by_url_and_by_content_and_is_idempotent(source):
    batch = [
        news("Acme beats estimates", url="https://a.example/1"),
        news("Acme beats estimates", url="https://b.example/other-url"),  # same content, new url
        news("Different story", url="https://a.example/1"),               # same url
        news("Third story"),
    ]
    first = services.ingest_items(batch, source)
    assert len(first.created) == 2
    assert [d["index"] for d in first.duplicates] == [1, 2]
    again = services.ingest_items(batch, source)
    assert again.created == [] and len(again.duplicates) == 4 and again.rejected == []
    assert {d["id"] for d in again.duplicates if d["index"] in (0, 3)} == set(first.created)
    assert NewsItem.objects.count() == 2


def test_it_treats_whitespace_and_case_changes_as_the_same_content(source):
    services.ingest_items([news("Fed  holds rates", body="Statement text")], source)
    r = services.ingest_items([news("fed holds RATES", body=" statement   text ")], source)
    assert r.created == [] and "same headline and body" in r.duplicates[0]["reason"]


def test_it_reports_bad_items_and_keeps_the_rest(source):
    batch = [news("Good one"), {"url": "ftp://x/1", "headline": "bad scheme"}, {"url": "https://x.example/2", "headline": " "},
             news("Bad time", published_at="yesterday-ish"), "not an object", news("Good two")]
    r = services.ingest_items(batch, source)
    assert len(r.created) == 2
    reasons = {x["index"]: x["reason"] for x in r.rejected}
    assert set(reasons) == {1, 2, 3, 4}
    assert "http(s)" in reasons[1] and "headline is required" in reasons[2]
    assert "ISO 8601" in reasons[3] and "object" in reasons[4]


def test_it_extracts_cashtags_and_company_names(source):
    Company.objects.create(ticker="ACME", name="Acme Corp", aliases=["Acme"])
    Company.objects.create(ticker="GLBX", name="Globex")
    r = services.ingest_items([news("Acme Corp and Globex settle; $XYZ jumps, $acme too")], source)
    assert NewsItem.objects.get(pk=r.created[0]).tickers == ["XYZ", "ACME", "GLBX"]


def test_it_ingests_a_labelled_csv_and_rejects_bad_labels(source):
    data = (
        b"url,headline,body,published_at,topic,sentiment\n"
        b"https://c.example/1,Bank downgraded,,2026-10-01T10:00:00Z,credit,negative\n"
        b"https://c.example/2,Rates unchanged,,2026-10-01 11:00,macro,neutral\n"
        b"https://c.example/3,Odd label,,2026-10-01,weather,positive\n"
    )
    r = services.ingest_csv(data, source)
    assert len(r.created) == 2 and r.rejected[0]["index"] == 2 and "weather" in r.rejected[0]["reason"]
    item = NewsItem.objects.get(url="https://c.example/1")
    assert (item.gold_topic, item.gold_sentiment) == ("credit", "negative")


def test_it_refuses_a_csv_without_the_required_columns(source):
    with pytest.raises(services.IngestError, match="headline"):
        services.ingest_csv(b"url,title\nhttps://x/1,t\n", source)


RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>
<item><title>Globex profit warning</title><link>https://feed.example/1</link>
<description>&lt;p&gt;Shares fall&lt;/p&gt;</description><pubDate>Thu, 01 Oct 2026 09:30:00 GMT</pubDate></item>
<item><title>Acme opens plant</title><link>https://feed.example/2</link></item>
</channel></rss>"""


def test_it_parses_rss_entries():
    items = services.feed_entries(RSS)
    assert items[0]["headline"] == "Globex profit warning" and items[0]["url"] == "https://feed.example/1"
    assert "Shares fall" in items[0]["body"] and items[0]["published_at"].hour == 9


@pytest.fixture
def feed_server():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.end_headers()
            self.wfile.write(RSS)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/feed.xml"
    server.shutdown()


def test_it_polls_a_feed_through_the_outbound_wrapper(settings, feed_server):
    settings.AIGC_ALLOW_PRIVATE_URLS = True
    src = NewsSource.objects.create(name="loop", kind="rss", url=feed_server, poll_interval_s=60)
    assert services.due_sources() == [src]
    r = services.poll_source(src)
    assert len(r.created) == 2
    src.refresh_from_db()
    assert src.last_status.startswith("ok: 2 new") and services.due_sources() == []
    assert len(services.poll_source(src).duplicates) == 2  # polling again adds nothing


def test_it_refuses_to_poll_a_private_feed_when_not_allowed(settings, feed_server):
    settings.AIGC_ALLOW_PRIVATE_URLS = False
    src = NewsSource.objects.create(name="loop", kind="rss", url=feed_server)
    with pytest.raises(OutboundError, match="private"):
        services.poll_source(src)
    src.refresh_from_db()
    assert src.last_status.startswith("error") and NewsItem.objects.count() == 0


def test_it_schedules_feed_polls_rule_evaluation_and_the_webhook_sweeper(settings):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"apps.sentiment.tasks.poll_due_feeds", "apps.sentiment.tasks.evaluate_alert_rules",
            "apps.sentiment.tasks.send_due_webhooks"} <= tasks


def test_it_polls_due_feeds_in_jobs(settings, feed_server, django_capture_on_commit_callbacks):
    from apps.common.models import Job
    from apps.sentiment.tasks import poll_due_feeds

    settings.AIGC_ALLOW_PRIVATE_URLS = True
    NewsSource.objects.create(name="loop", kind="rss", url=feed_server, poll_interval_s=60)
    NewsSource.objects.create(name="off", kind="rss", url=feed_server, enabled=False)
    with django_capture_on_commit_callbacks(execute=True):
        assert poll_due_feeds() == 1
    job = Job.objects.get(kind="sentiment.poll")
    assert job.state == "succeeded" and job.result["created"] == 2
    assert Job.objects.filter(kind="sentiment.classify").exists()
    assert poll_due_feeds() == 0  # not due again for a minute
