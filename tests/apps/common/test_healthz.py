import pytest
from django.test import override_settings


@pytest.mark.django_db
def test_it_reports_database_and_broker_up(client):
    data = client.get("/healthz").json()
    assert data["checks"]["database"]["ok"] is True
    assert data["checks"]["broker"]["ok"] is True


@pytest.mark.django_db
def test_it_says_the_broker_is_down(client):
    with override_settings(CELERY_BROKER_URL="redis://127.0.0.1:1/0"):
        resp = client.get("/healthz")
    assert resp.status_code == 503
    data = resp.json()
    assert "broker" in data["down"]
    assert data["checks"]["database"]["ok"] is True
    assert data["checks"]["broker"]["error"]


@pytest.mark.django_db
def test_it_says_no_worker_is_alive(client):
    data = client.get("/healthz").json()
    assert "workers" in data["down"]


@pytest.mark.worker
def test_it_sees_a_live_worker(client, live_worker):
    data = client.get("/healthz").json()
    assert data["checks"]["workers"]["ok"] is True
    assert any(w["hostname"].startswith("w1@") for w in data["checks"]["workers"]["workers"])
