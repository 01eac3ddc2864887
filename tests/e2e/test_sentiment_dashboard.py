"""Browser: the sentiment dashboard draws the timeline chart with data and shows the alert."""
from datetime import UTC, datetime, timedelta

import pytest

from apps.sentiment.models import Alert, AlertRule
from tests.apps.sentiment.conftest import make_item


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_it_shows_the_timeline_chart_and_the_alert(staff_page, live_server):
    t0 = datetime(2026, 10, 1, tzinfo=UTC)
    for h in range(24):
        make_item(topic="credit", sentiment="negative", published_at=t0 + timedelta(hours=h))
    for i in range(8):
        make_item(f"Globex downgraded {i}", topic="credit", sentiment="negative",
                  published_at=t0 + timedelta(hours=20, minutes=i))
    rule = AlertRule.objects.create(name="Credit spike", scope="topic", key="credit")
    alert = Alert.objects.create(rule=rule, scope="topic", key="credit", state="firing",
                                 started_at=t0 + timedelta(hours=20), fired_at=t0 + timedelta(hours=21),
                                 peak_value=9, baseline=1, peak_ratio=8)

    staff_page.goto(f"{live_server.url}/sentiment/")
    staff_page.wait_for_function("() => document.getElementById('timeline').dataset.points === '24'")
    drawn = staff_page.evaluate("""() => {
        const c = Chart.getChart(document.getElementById('timeline'));
        const credit = c.data.datasets.find(d => d.label === 'credit');
        const markers = c.data.datasets.find(d => d.label === 'alerts').data.filter(v => v !== null);
        return {total: credit.data.reduce((a, b) => a + b, 0), markers: markers.length,
                width: c.width, height: c.height};
    }""")
    assert drawn["total"] == 32 and drawn["markers"] == 1
    assert drawn["width"] > 100 and drawn["height"] > 100
    # The canvas has pixels painted, not just a blank box.
    painted = staff_page.evaluate("""() => {
        const c = document.getElementById('timeline');
        const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
        return n;
    }""")
    assert painted > 500
    row = staff_page.locator(f"tr[data-alert='{alert.pk}']")
    assert "firing" in row.inner_text() and "Credit spike" in row.inner_text()
    assert "Globex downgraded 7" in staff_page.locator("#feed").inner_text()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_it_corrects_a_label_in_the_feed_without_reload(staff_page, live_server):
    item = make_item("Hooli fined by regulator", topic="regulation", sentiment="neutral")
    staff_page.goto(f"{live_server.url}/sentiment/")
    staff_page.evaluate("window.__marker = 1")
    row = staff_page.locator(f"tr[data-item='{item.pk}']")
    row.locator("select[name=sentiment]").select_option("negative")
    row.locator("button[type=submit]").click()
    staff_page.wait_for_function(
        f"() => document.querySelector(\"tr[data-item='{item.pk}']\").innerText.includes('saved')", timeout=10_000)
    assert "corrected" in staff_page.locator(f"tr[data-item='{item.pk}']").inner_text()
    assert staff_page.evaluate("window.__marker") == 1
    item.refresh_from_db()
    assert item.classification.sentiment == "negative" and item.gold_sentiment == "negative"
