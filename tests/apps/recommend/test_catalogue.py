import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.recommend import services
from apps.recommend.models import Item
from apps.recommend.services import RecommendError

CSV = (
    "external_id,title,description,tags,category,price,created_at,available\n"
    "sku-1,Espresso beans,Dark roast,coffee|beans,coffee,12.5,2026-01-02T10:00:00Z,true\n"
    "sku-2,Hiking boots,Waterproof leather,outdoor,hiking,89,,yes\n"
)


@pytest.mark.django_db
def test_it_imports_a_csv_and_upserts_on_reimport():
    rows = services.parse_catalogue_file(CSV.encode(), "cat.csv")
    assert services.upsert_items(rows).as_dict() == {"created": 2, "updated": 0, "removed": 0, "unchanged": 0}
    item = Item.objects.get(external_id="sku-1")
    assert item.tags == ["coffee", "beans"] and item.price == 12.5 and item.created_at.year == 2026
    again = services.upsert_items(services.parse_catalogue_file(CSV.replace("12.5", "13").encode(), "cat.csv"))
    assert again.as_dict() == {"created": 0, "updated": 1, "removed": 0, "unchanged": 1}
    assert Item.objects.get(external_id="sku-1").price == 13


@pytest.mark.django_db
def test_it_writes_nothing_when_one_row_is_bad():
    bad = CSV + "sku-3,Broken,,,,not-a-price,,\n"
    with pytest.raises(RecommendError, match="row 3: price 'not-a-price' is not a number"):
        services.upsert_items(services.parse_catalogue_file(bad.encode(), "cat.csv"))
    assert Item.objects.count() == 0


@pytest.mark.django_db
def test_it_names_the_problem_in_malformed_files():
    with pytest.raises(RecommendError, match=r"not valid JSON.*\(line 1"):
        services.parse_catalogue_file(b"[{oops", "cat.json")
    with pytest.raises(RecommendError, match="lacks"):
        services.parse_catalogue_file(b"name,price\nx,1\n", "cat.csv")
    with pytest.raises(RecommendError, match="repeated"):
        services.upsert_items([{"external_id": "a", "title": "A"}, {"external_id": "a", "title": "B"}])
    with pytest.raises(RecommendError, match="title is required"):
        services.upsert_items([{"external_id": "a"}])


@pytest.mark.django_db
def test_it_imports_json_through_the_api_with_the_recommend_token(recommend_api):
    res = recommend_api.post("/recommend/api/items/", {"items": [
        {"external_id": "j1", "title": "Trail map", "category": "hiking", "tags": ["maps"]}]}, format="json")
    assert res.status_code == 200, res.content
    assert res.json()["created"] == 1
    upload = SimpleUploadedFile("cat.json", json.dumps([{"id": "j2", "title": "Grinder"}]).encode())
    res = recommend_api.post("/recommend/api/items/upload/", {"file": upload}, format="multipart")
    assert res.status_code == 200 and res.json()["created"] == 1
    res = recommend_api.delete("/recommend/api/items/j1/")
    assert res.status_code == 200 and res.json()["removed"] == 1
    assert Item.objects.get(external_id="j1").removed_at is not None
    assert recommend_api.delete("/recommend/api/items/missing/").status_code == 404


@pytest.mark.django_db
def test_it_refuses_other_apps_and_anonymous_callers(client, support_api):
    assert client.post("/recommend/api/items/", {}, content_type="application/json").status_code == 401
    res = support_api.post("/recommend/api/items/", {"items": [{"external_id": "x", "title": "X"}]}, format="json")
    assert res.status_code == 403 and "recommend" in res.json()["detail"]
    for url in ["/recommend/api/recommend/?user_id=u", "/recommend/api/model/"]:
        assert support_api.get(url).status_code == 403
        assert client.get(url).status_code == 401
