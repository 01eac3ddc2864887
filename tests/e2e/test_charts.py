"""The one chart convention (apps/common/static/common/charts.js).

Every chart on every page is made by the wrapper (no `new Chart` anywhere else, and
every live Chart.js instance in a browser carries the wrapper's mark); a time series
of one point shows that point; axes carry titles with units and the timezone; count
axes tick in integers; lines are straight; empty data says so instead of a blank box."""
from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from tests.conftest import ROOT

WRAPPER = ROOT / "apps" / "common" / "static" / "common" / "charts.js"

# Every live chart on the page, as the wrapper made it (or not).
CHARTS = """() => Object.values(Chart.instances).map(c => ({
    id: c.canvas.id, wrapped: !!c.$aigc, type: c.config.type,
    tension: c.data.datasets.map(d => d.tension || 0),
    xTitle: c.options.scales && c.options.scales.x ? c.options.scales.x.title.text : null,
    yTitle: c.options.scales && c.options.scales.y ? c.options.scales.y.title.text : null,
}))"""


def test_it_creates_charts_only_in_the_wrapper():
    offenders = []
    for path in [*ROOT.glob("apps/*/static/**/*.js"), *ROOT.glob("apps/*/templates/**/*.html"),
                 *ROOT.glob("templates/**/*.html")]:
        if path == WRAPPER:
            continue
        text = path.read_text(errors="replace")
        if re.search(r"new\s+Chart\s*\(|Chart\s*\.\s*register\s*\(", text):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"charts made outside common/charts.js: {offenders}"
    assert "new Chart(" in WRAPPER.read_text()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_it_shows_a_time_series_of_one_point(staff_page, live_server):
    from tests.apps.sentiment.conftest import make_item

    make_item(topic="credit", sentiment="negative", published_at=datetime(2026, 10, 1, 9, 30, tzinfo=UTC))
    staff_page.goto(f"{live_server.url}/sentiment/")
    staff_page.wait_for_function("() => document.getElementById('timeline').dataset.points === '1'")
    point = staff_page.evaluate("""() => {
        const c = Chart.getChart(document.getElementById('timeline'));
        const i = c.data.datasets.findIndex(d => d.label === 'credit');
        const el = c.getDatasetMeta(i).data[0];
        return {radius: el.options.radius, x: el.x, y: el.y, value: c.data.datasets[i].data[0],
                colour: c.data.datasets[i].borderColor, ratio: window.devicePixelRatio,
                xTitle: c.options.scales.x.title.text, yTitle: c.options.scales.y.title.text,
                ticks: c.scales.y.ticks.map(t => t.value), wrapped: !!c.$aigc};
    }""")
    assert point["value"] == 1 and point["radius"] >= 3 and point["wrapped"]
    # The point is painted in its series' colour where Chart.js put it.
    rgb = staff_page.evaluate("""([x, y, r]) => {
        const c = document.getElementById('timeline');
        return Array.from(c.getContext('2d').getImageData(Math.round(x * r), Math.round(y * r), 1, 1).data);
    }""", [point["x"], point["y"], point["ratio"]])
    want = tuple(int(point["colour"][i:i + 2], 16) for i in (1, 3, 5))
    assert rgb[3] > 200 and max(abs(a - b) for a, b in zip(rgb[:3], want, strict=True)) < 40, (rgb, want)
    assert point["xTitle"] == "hour (UTC)" and point["yTitle"] == "negative news items (count)"
    assert point["ticks"] and all(float(t).is_integer() for t in point["ticks"])
    # The numbers as a table, for screen readers and anyone who wants them.
    table = staff_page.locator("#timeline-table table")
    assert table.locator("tbody tr").count() == 1
    assert "1 Oct 2026, 09:00" in table.text_content()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_it_says_no_data_yet_instead_of_a_blank_chart(staff_page, live_server):
    staff_page.goto(f"{live_server.url}/support/")
    staff_page.wait_for_selector("figure.chart[data-state]")
    states = staff_page.evaluate(
        "() => Array.from(document.querySelectorAll('figure.chart')).map(f => [f.dataset.state, f.innerText])")
    assert states and all(s == "empty" for s, _ in states), states
    assert any("No conversations yet." in t for _, t in states)
    assert staff_page.evaluate("Object.keys(Chart.instances).length") == 0


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_it_draws_the_support_charts_through_the_wrapper(staff_page, live_server):
    from apps.support.models import Conversation, Feedback, Message

    for i in range(3):
        conv = Conversation.objects.create()
        Message.objects.create(conversation=conv, role="customer", text=f"where is my order {i}")
        bot = Message.objects.create(conversation=conv, role="bot", text="It ships today.", intent="order_status")
        Feedback.objects.create(message=bot, rating=1 if i else -1)
    staff_page.goto(f"{live_server.url}/support/")
    staff_page.wait_for_function("() => Object.keys(Chart.instances).length >= 3")
    charts = {c["id"]: c for c in staff_page.evaluate(CHARTS)}
    assert set(charts) >= {"chart-daily", "chart-intents", "chart-ratings"}
    assert all(c["wrapped"] for c in charts.values()), charts
    assert all(t == 0 for c in charts.values() for t in c["tension"])
    assert charts["chart-daily"]["xTitle"] == "day (UTC)"
    assert charts["chart-daily"]["yTitle"] == "conversations (count)"
    # Top intents: counts tick in whole numbers (no 0.5, 1.5).
    ticks = staff_page.evaluate("() => Chart.getChart(document.getElementById('chart-intents')).scales.x.ticks"
                                ".map(t => t.value)")
    assert ticks and all(float(t).is_integer() for t in ticks), ticks


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_it_draws_alert_markers_unclipped_with_a_time_range_picker(staff_page, live_server):
    from datetime import timedelta

    from apps.sentiment.models import Alert, AlertRule
    from tests.apps.sentiment.conftest import make_item

    t0 = datetime(2026, 10, 1, tzinfo=UTC)
    for h in range(0, 24 * 5, 3):
        make_item(topic="credit", sentiment="negative", published_at=t0 + timedelta(hours=h))
    for i in range(6):  # the burst is the tallest point: its marker sits on the top edge
        make_item(topic="credit", sentiment="negative", published_at=t0 + timedelta(hours=117, minutes=i))
    rule = AlertRule.objects.create(name="Credit spike", scope="topic", key="credit")
    Alert.objects.create(rule=rule, scope="topic", key="credit", state="firing", started_at=t0 + timedelta(hours=117),
                         fired_at=t0 + timedelta(hours=117), peak_value=7, baseline=1, peak_ratio=7)
    staff_page.goto(f"{live_server.url}/sentiment/")
    staff_page.wait_for_function("() => document.getElementById('timeline').dataset.alerts === '1'")
    marker = staff_page.evaluate("""() => {
        const c = Chart.getChart(document.getElementById('timeline'));
        const i = c.data.datasets.findIndex(d => d.label === 'alerts');
        const el = c.getDatasetMeta(i).data.find((p, j) => c.data.datasets[i].data[j] !== null);
        return {clip: c.data.datasets[i].clip, y: el.y, r: el.options.radius, top: c.chartArea.top,
                points: c.data.labels.length};
    }""")
    assert marker["clip"] is False and marker["y"] - marker["r"] >= 0  # inside the canvas, not cut at the edge
    assert marker["y"] >= marker["top"]  # the y axis has room above the tallest marker
    picker = staff_page.locator("figure.chart:has(#timeline) .chart-range")
    assert picker.locator("button").all_inner_texts()[-1] == "All"
    picker.get_by_role("button", name="24 h").click()
    staff_page.wait_for_function("() => document.getElementById('timeline').dataset.points === '24'")
    assert picker.get_by_role("button", name="24 h").get_attribute("aria-pressed") == "true"
    assert staff_page.evaluate("document.getElementById('timeline').dataset.alerts") == "1"
    picker.get_by_role("button", name="All").click()
    staff_page.wait_for_function(f"() => document.getElementById('timeline').dataset.points === '{marker['points']}'")
