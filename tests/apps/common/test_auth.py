import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from apps.common.models import ApiToken, hash_token

DASHBOARDS = ["home", "jobs", "tokens", "support:dashboard", "sentiment:dashboard", "recommend:dashboard"]


@pytest.mark.django_db
def test_it_refuses_api_without_token():
    resp = APIClient().get("/api/support/status/")
    assert resp.status_code == 401
    assert resp["WWW-Authenticate"] == "Bearer"
    assert resp.json()["detail"]


@pytest.mark.django_db
def test_it_refuses_a_token_of_another_app(sentiment_api):
    resp = sentiment_api.get("/api/support/status/")
    assert resp.status_code == 403
    assert "sentiment" in resp.json()["detail"]


@pytest.mark.django_db
def test_it_accepts_a_token_of_the_right_app(support_api):
    resp = support_api.get("/api/support/status/")
    assert resp.status_code == 200 and resp.json()["app"] == "support"


@pytest.mark.django_db
def test_it_refuses_revoked_and_unknown_tokens():
    token, raw = ApiToken.issue("t", "support")
    token.revoke()
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert c.get("/api/support/status/").status_code == 401
    c.credentials(HTTP_AUTHORIZATION="Bearer aigc_nope")
    assert c.get("/api/support/status/").status_code == 401


@pytest.mark.django_db
def test_it_stores_only_the_hash():
    token, raw = ApiToken.issue("t", "recommend")
    assert raw not in str(ApiToken.objects.filter(pk=token.pk).values().first())
    assert token.key_hash == hash_token(raw)


@pytest.mark.django_db
def test_it_shows_a_new_key_once(staff_client):
    resp = staff_client.post("/tokens/", {"name": "shop front", "app": "recommend"}, follow=True)
    assert b"aigc_" in resp.content and resp.redirect_chain == [("/tokens/", 302)]
    again = staff_client.get("/tokens/")
    assert b'id="new-key"' not in again.content and b"shop front" in again.content


@pytest.mark.django_db
@pytest.mark.parametrize("name", DASHBOARDS)
def test_it_requires_login_for_dashboards(client, name):
    resp = client.get(reverse(name))
    assert resp.status_code == 302 and "login" in resp["Location"]


@pytest.mark.django_db
@pytest.mark.parametrize("name", DASHBOARDS)
def test_it_keeps_outsiders_out_of_dashboards(client, outsider, name):
    client.force_login(outsider)
    resp = client.get(reverse(name))
    assert resp.status_code == 302


@pytest.mark.django_db
def test_it_serves_the_openapi_schema_and_docs(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200 and b"openapi" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()
    assert b"cdn" not in docs.content.lower()
