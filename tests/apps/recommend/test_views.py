import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.recommend.models import Item
from tests.apps.recommend.conftest import add_events


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/recommend/", "/recommend/user/?user_id=u1", "/recommend/item/?item_id=x"])
def test_it_requires_staff_login(client, outsider, url):
    assert client.get(url).status_code == 302
    client.force_login(outsider)
    assert client.get(url).status_code == 302


@pytest.mark.django_db
def test_it_shows_a_user_with_history_and_reasons(shop, staff_client):
    add_events("coffee-fan", ["coffee-1", "coffee-2", "coffee-3"])
    page = staff_client.get("/recommend/user/?user_id=coffee-fan")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Recommended for coffee-fan" in html and ("because you looked at" in html or "people who liked" in html)
    assert "Espresso" in html or "Coffee" in html
    assert "No events" in staff_client.get("/recommend/user/?user_id=ghost").content.decode()


@pytest.mark.django_db
def test_it_shows_similar_items_and_unknown_item_errors(shop, staff_client):
    html = staff_client.get("/recommend/item/?item_id=baby-3").content.decode()
    assert "Similar item" in html and html.count("<td>baby</td>") >= 5
    assert "unknown item id" in staff_client.get("/recommend/item/?item_id=zzz").content.decode()


@pytest.mark.django_db
def test_it_imports_a_catalogue_from_the_dashboard(staff_client):
    upload = SimpleUploadedFile("c.csv", b"external_id,title,category\nd1,Dashboard item,books\n")
    res = staff_client.post("/recommend/upload/", {"file": upload}, follow=True)
    assert "Imported: 1 created" in res.content.decode()
    assert Item.objects.filter(external_id="d1").exists()
    bad = SimpleUploadedFile("c.csv", b"external_id,title,price\nd2,Bad,-1\n")
    res = staff_client.post("/recommend/upload/", {"file": bad}, follow=True)
    assert "Nothing imported: row 1: price must be a non-negative number" in res.content.decode()
