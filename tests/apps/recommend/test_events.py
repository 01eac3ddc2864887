import pytest

from apps.recommend.models import Event
from tests.apps.recommend.conftest import make_item


@pytest.fixture
def item(db):
    return make_item("sku-1", "Espresso beans", "coffee")


def event(eid="e1", **kw):
    return {"event_id": eid, "user_id": "u1", "item_id": "sku-1", "kind": "click",
            "at": "2026-02-01T10:00:00Z", **kw}


def test_it_records_a_single_event_once(recommend_api, item):
    first = recommend_api.post("/recommend/api/events/", event(), format="json")
    assert first.status_code == 201 and first.json()["status"] == "accepted"
    again = recommend_api.post("/recommend/api/events/", event(), format="json")
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    # the same id saying something else is refused, not silently called a duplicate
    other = recommend_api.post("/recommend/api/events/", event(kind="purchase"), format="json")
    assert other.status_code == 400 and "different payload" in other.json()["detail"]
    assert Event.objects.get().kind == "click"


def test_it_rejects_an_unknown_item_clearly(recommend_api, item):
    res = recommend_api.post("/recommend/api/events/", event(item_id="ghost"), format="json")
    assert res.status_code == 400
    assert "unknown item_id 'ghost'" in res.json()["detail"]
    res = recommend_api.post("/recommend/api/events/", event(kind="teleport"), format="json")
    assert res.status_code == 400 and "kind" in res.json()["detail"]
    assert Event.objects.count() == 0


def test_it_takes_a_batch_with_a_status_per_event(recommend_api, item):
    recommend_api.post("/recommend/api/events/", event("old"), format="json")
    batch = [event("a"), event("b", kind="rating", value=4), event("old"), event("c", item_id="ghost"),
             event("d", kind="rating", value=9), {"nonsense": True}, event("a")]
    res = recommend_api.post("/recommend/api/events/", {"events": batch}, format="json")
    assert res.status_code == 200, res.content
    body = res.json()
    assert [r["status"] for r in body["results"]] == [
        "accepted", "accepted", "duplicate", "rejected", "rejected", "rejected", "duplicate"]
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 2, 3)
    assert "between 0 and 5" in body["results"][4]["detail"]
    assert Event.objects.count() == 3


def test_it_limits_the_batch_size(recommend_api, item):
    res = recommend_api.post("/recommend/api/events/", {"events": [event(f"x{i}") for i in range(1001)]},
                             format="json")
    assert res.status_code == 400 and "at most 1000" in res.json()["detail"]
    res = recommend_api.post("/recommend/api/events/", {"events": []}, format="json")
    assert res.status_code == 400


def test_it_needs_the_recommend_token(client, sentiment_api, item):
    assert client.post("/recommend/api/events/", event(), content_type="application/json").status_code == 401
    assert sentiment_api.post("/recommend/api/events/", event(), format="json").status_code == 403
