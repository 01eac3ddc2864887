import pytest
from django.conf import settings
from django.core.management import call_command

from apps.common.models import Job
from apps.recommend import tasks
from apps.recommend.models import Event, Item
from tests.apps.recommend.conftest import make_item


def write_fixture(folder):
    (folder / "items.csv").write_text("external_id,title,category,price\nA,Espresso beans,coffee,9\nB,Tent,outdoor,90\n")
    (folder / "events.csv").write_text(
        "event_id,user_id,item_id,kind,value,at\n"
        "e1,u1,A,view,,2026-09-01T10:00:00+00:00\ne2,u1,A,purchase,1,2026-09-01T10:05:00+00:00\n"
        "e3,u2,GONE,click,,2026-09-01T11:00:00+00:00\n")


@pytest.mark.django_db
def test_it_loads_the_demo_idempotently(tmp_path, capsys):
    write_fixture(tmp_path)
    call_command("recommend_demo", "--no-train", "--dir", str(tmp_path))
    call_command("recommend_demo", "--no-train", "--dir", str(tmp_path))
    out = capsys.readouterr().out
    assert "2 new, 0 already loaded, 1 rejected" in out and "0 new, 2 already loaded" in out
    assert Item.objects.count() == 2 and Event.objects.count() == 2


def test_it_ships_a_deterministic_demo_of_the_promised_size():
    import csv

    folder = settings.BASE_DIR / "fixtures" / "recommend"
    items = list(csv.DictReader(open(folder / "items.csv")))
    events = list(csv.DictReader(open(folder / "events.csv")))
    assert 300 <= len(items) <= 500 and len({i["category"] for i in items}) >= 6
    assert 20_000 <= len(events) <= 50_000 and len({e["user_id"] for e in events}) >= 500
    known = {i["external_id"] for i in items}
    assert all(e["item_id"] in known for e in events[:2000])


@pytest.mark.django_db
def test_it_schedules_daily_training_once(django_capture_on_commit_callbacks, monkeypatch):
    assert settings.CELERY_BEAT_SCHEDULE["recommend-daily-train"]["task"] == "apps.recommend.tasks.schedule_training"
    assert tasks.schedule_training() is None  # no events yet: nothing to learn from
    make_item("A", "Espresso")
    Event.objects.create(event_id="e1", user_id="u", item=Item.objects.get(), kind="click",
                         at="2026-09-01T10:00:00Z")
    monkeypatch.setattr(tasks.train_recommender, "apply_async", lambda **kw: type("R", (), {"id": "x"})())
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.schedule_training() is not None
        assert tasks.schedule_training() is None  # one already queued
    assert Job.objects.filter(kind="recommend.train").count() == 1
