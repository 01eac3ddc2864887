"""The issue's serving contracts: one scoring path, rules, incremental catalogue, no shared-state race,
and a collaborative model that follows co-consumption where text would not."""
import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from aigc_core.models.ease import Ease, EaseConfig
from apps.recommend import services
from apps.recommend.models import Item, Rule
from tests.apps.recommend.conftest import add_events


def test_it_follows_co_consumption_over_text_and_still_reaches_new_items_by_text():
    from apps.recommend.ranking import Candidates, Ranker, UserSignals, pair_features

    # 4 items: 0 coffee beans, 1 hiking boots (bought with beans), 2 coffee grinder (text-like 0), 3 new coffee item.
    rng = np.random.default_rng(0)
    X = np.zeros((60, 4), np.float32)
    X[:40, 0] = X[:40, 1] = 1.0  # co-consumed, across categories
    X[40:, 2] = 1.0
    ease = Ease.fit(X, EaseConfig(l2=1.0, keep_per_item=0))
    collab = ease.score_user(np.array([0]))
    assert collab[1] > collab[2]  # behaviour, not text, puts the boots next to the beans
    assert not ease.covers(np.array([3]))[0]
    text = rng.standard_normal((4, 384)).astype(np.float32)
    text[2] = text[0] + 0.1 * text[2]
    text[3] = text[0] + 0.1 * text[3]
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    cand = Candidates(model_row=np.array([0, 1, 2, -1]), known=np.array([True, True, True, False]),
                      item_vecs=text, text_vecs=text, categories=["coffee", "hiking", "coffee", "coffee"],
                      log_price=np.full(4, np.nan), created_ts=np.zeros(4), popularity=np.zeros(4, np.float32))
    user = UserSignals(collab=collab, user_vec=text[0], text_mean=text[0], category_share={"coffee": 1.0},
                       mean_log_price=float("nan"), now_ts=0.0)
    feats = pair_features(user, cand)
    ranker = Ranker(coef=[1.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0])
    s = ranker.score(feats)
    assert s[1] > s[2]  # co-consumed above text-similar for the known user
    # A user with no behaviour, whose text matches item 3: the new item outranks the unrelated boots.
    cold = UserSignals(collab=None, user_vec=text[3], text_mean=text[3], category_share={}, mean_log_price=float("nan"),
                       now_ts=0.0)
    s2 = ranker.score(pair_features(cold, cand))
    assert s2[3] > s2[1]


@pytest.mark.django_db
def test_it_gives_the_same_score_in_recommend_and_score(shop):
    add_events("coffee-fan", [f"coffee-{i}" for i in range(4)])
    recs = services.recommend("coffee-fan", k=8)["items"]
    scored = services.score("coffee-fan", [r["item_id"] for r in recs])["results"]
    for r, s in zip(recs, scored, strict=True):
        assert r["item_id"] == s["item_id"]
        assert r["score"] == pytest.approx(s["score"], abs=1e-3), (r, s)


@pytest.mark.django_db
def test_it_applies_pin_boost_and_exclude_rules_and_says_so(shop):
    add_events("coffee-fan", [f"coffee-{i}" for i in range(4)])
    before = services.recommend("coffee-fan", k=10)["items"]
    top = before[0]["item_id"]
    Rule.objects.create(kind="exclude", item=Item.objects.get(external_id=top))
    Rule.objects.create(kind="pin", item=Item.objects.get(external_id="baby-3"), position=1, note="spring sale")
    Rule.objects.create(kind="boost", category="hiking", amount=50.0, note="hiking week")
    after = services.recommend("coffee-fan", k=10)["items"]
    ids = [r["item_id"] for r in after]
    assert top not in ids
    assert ids[0] == "baby-3" and "pinned by the merchandiser" in after[0]["reason"]
    assert "spring sale" in after[0]["reason"]
    assert after[1]["category"] == "hiking" and "boosted by the merchandiser" in after[1]["reason"]
    scored = services.score("coffee-fan", [top, ids[1]])["results"]
    assert scored[0]["available"] is False and scored[1]["boost"] == 50.0


@pytest.mark.django_db
def test_it_serves_a_catalogue_edit_after_its_job_without_a_rebuild(shop, django_capture_on_commit_callbacks):
    from apps.recommend import serving

    add_events("hiker", ["hiking-0", "hiking-1", "hiking-2"])
    services.recommend("hiker", k=5)
    built, first = serving._snapshot.built_at, serving._snapshot
    with django_capture_on_commit_callbacks(execute=True):
        out = services.import_items([{"external_id": "hiking-new", "title": "Ultralight hiking tent for trekking",
                                      "category": "hiking"}])
    assert out["created"] == 1 and out["job"]
    sim = services.similar_items("hiking-1", 20)["similar"]
    assert "hiking-new" in {s["item_id"] for s in sim}
    assert serving._snapshot.built_at == built  # synced by id, not rebuilt
    # ...into a new snapshot that per-snapshot caches (popularity rows) tell from the first
    assert serving._snapshot is not first and serving._snapshot.serial != first.serial
    counts, _ = serving._popularity(serving._snapshot, serving._reference_time())
    assert len(counts) == len(serving._snapshot.items)
    services.remove_items(["hiking-new"])
    assert "hiking-new" not in {r["item_id"] for r in services.recommend("hiker", k=50)["items"]}
    assert "hiking-new" not in {s["item_id"] for s in services.similar_items("hiking-1", 20)["similar"]}


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_under_a_threaded_server_do_not_change_each_others_results(live_server, settings,
                                                                                       trained, tmp_path):
    from aigc_core.registry import Registry
    from apps.common.models import ApiToken
    from tests.apps.recommend.factories import catalogue, simulate

    settings.AIGC_ARTIFACTS_DIR = tmp_path / "artifacts"
    _, _, artifacts, metrics = trained
    Registry(settings.AIGC_ARTIFACTS_DIR).save(services.MODEL_NAME, writer=artifacts.save, metrics=metrics)
    services.reset_serving_cache()
    items = catalogue()
    services.upsert_items([{**it, "external_id": it["id"]} for it in items])
    evs = simulate(items, n_users=20, per_user=8, seed=5)
    services.record_events([{"event_id": e["id"], "user_id": e["user"], "item_id": e["item"], "kind": e["kind"],
                             "at": e["at"].isoformat()} for e in evs])
    users = sorted({e["user"] for e in evs})[:8]
    _, raw = ApiToken.issue(name="threads", app="recommend")

    def call(user):
        req = urllib.request.Request(f"{live_server.url}/recommend/api/recommend/", method="POST",
                                     data=json.dumps({"user_id": user, "k": 10}).encode(),
                                     headers={"Authorization": f"Bearer {raw}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as res:
            return [(r["item_id"], r["score"]) for r in json.loads(res.read())["items"]]

    alone = {u: call(u) for u in users}
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(call, users * 3))
    for u, got in zip(users * 3, together, strict=True):
        assert got == alone[u], u
    services.reset_serving_cache()
