import pytest

from apps.recommend import services
from tests.apps.recommend.conftest import add_events
from tests.apps.recommend.factories import catalogue


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_it_looks_up_a_user_without_reloading(staff_page, live_server, settings, tmp_path):
    settings.AIGC_ARTIFACTS_DIR = tmp_path / "artifacts"  # no model yet: text similarity serves
    services.reset_serving_cache()
    services.upsert_items([{**it, "external_id": it["id"]} for it in catalogue(per_kind=4)])
    add_events("coffee-fan", ["coffee-0", "coffee-1", "coffee-2"])
    staff_page.goto(f"{live_server.url}/recommend/")
    staff_page.evaluate("window.__marker = 1")
    staff_page.fill("#user-form input[name=user_id]", "coffee-fan")
    staff_page.click("#user-form button[type=submit]")
    staff_page.wait_for_selector("#user-panel table.recs tr[data-item]", timeout=60_000)
    first = staff_page.locator("#user-panel table.recs tr[data-item]").first
    assert first.get_attribute("data-item") == "coffee-3"
    assert "because you looked at" in first.locator(".reason").inner_text()
    assert staff_page.locator("#user-panel table.history tbody tr").count() == 3
    assert staff_page.evaluate("window.__marker") == 1  # htmx swapped a partial; no reload
    services.reset_serving_cache()
