import pytest

from tests.apps.recommend.conftest import add_events


@pytest.mark.django_db
def test_it_recommends_and_scores_over_the_api(shop, recommend_api):
    add_events("coffee-fan", [f"coffee-{i}" for i in range(4)])
    res = recommend_api.post("/recommend/api/recommend/", {"user_id": "coffee-fan", "k": 3}, format="json")
    assert res.status_code == 200, res.content
    items = res.json()["items"]
    assert len(items) == 3 and items[0]["category"] == "coffee" and items[0]["reason"]
    assert recommend_api.get("/recommend/api/recommend/?user_id=coffee-fan&k=2").json()["items"][0]["item_id"]
    res = recommend_api.post("/recommend/api/score/", {"user_id": "coffee-fan", "candidates": [
        "coffee-5", {"text": "A new cold brew coffee maker"}]}, format="json")
    assert res.status_code == 200 and len(res.json()["results"]) == 2
    res = recommend_api.get("/recommend/api/items/hiking-1/similar/?k=3")
    assert res.status_code == 200 and len(res.json()["similar"]) == 3
    versions = recommend_api.get("/recommend/api/model/").json()["versions"]
    assert versions[0]["metrics"]["systems"]["popularity"]


@pytest.mark.django_db
def test_it_answers_bad_requests_with_a_detail(shop, recommend_api):
    cases = [
        ({"user_id": "u1", "candidates": []}, "candidates"),
        ({"user_id": "u1", "candidates": ["coffee-1"] * 10_000}, "at most 1000"),
        ({"user_id": "u1", "candidates": ["missing-item"]}, "unknown item ids: missing-item"),
        ({"user_id": "u1", "candidates": [{"title": "no text"}]}, "candidate 0"),
        ({"candidates": ["coffee-1"]}, "user_id"),
    ]
    for body, needle in cases:
        res = recommend_api.post("/recommend/api/score/", body, format="json")
        assert res.status_code == 400, (body, res.content)
        assert needle in res.json()["detail"], res.json()
    res = recommend_api.post("/recommend/api/recommend/", {"user_id": "u1", "k": 1000}, format="json")
    assert res.status_code == 400 and "k" in res.json()["detail"]
    res = recommend_api.post("/recommend/api/score/", {"user_id": "nobody", "candidates": ["coffee-1"]},
                             format="json")
    assert res.status_code == 200 and res.json()["cold_start"] is True
