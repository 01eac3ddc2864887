"""The one JSON parser: what it refuses and how it says so."""
from __future__ import annotations

import pytest

from apps.common.jsonparse import MAX_DEPTH, JSONInputError, clean_text, parse_json


def test_it_parses_ordinary_json():
    assert parse_json(b'{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}
    assert parse_json('"caf\\u00e9"') == "café"


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000, 100_000])
def test_it_refuses_deep_nesting_without_recursion_error(depth):
    with pytest.raises(JSONInputError, match="nests deeper"):
        parse_json("[" * depth + "]" * depth)
    with pytest.raises(JSONInputError, match="nests deeper"):
        parse_json('{"a":' * depth + "1" + "}" * depth)


def test_it_accepts_nesting_up_to_the_limit():
    depth = MAX_DEPTH
    assert parse_json("[" * depth + "]" * depth) is not None


@pytest.mark.parametrize("raw,field", [
    ('{"title": "a\\ud800b"}', "body.title"),
    ('{"items": [{"text": "x\\u0000y"}]}', "body.items[0].text"),
    ('["ok", "\\udfff"]', "body[1]"),
])
def test_it_names_the_field_holding_a_lone_surrogate_or_nul(raw, field):
    with pytest.raises(JSONInputError) as info:
        parse_json(raw)
    assert info.value.field == field
    assert field in info.value.detail


def test_it_refuses_bad_keys_nan_and_non_utf8():
    with pytest.raises(JSONInputError, match="key"):
        parse_json('{"a\\u0000": 1}')
    with pytest.raises(JSONInputError, match="NaN"):
        parse_json('{"x": NaN}')
    with pytest.raises(JSONInputError, match="UTF-8"):
        parse_json(b'{"x": "\xe9"}')
    with pytest.raises(JSONInputError, match="not valid JSON"):
        parse_json(b"{nope")
    with pytest.raises(JSONInputError, match="cannot be read"):
        parse_json("1" * 5000)


def test_where_prefixes_messages():
    with pytest.raises(JSONInputError, match="^line 7 is not valid JSON"):
        parse_json("{", where="line 7")


@pytest.mark.parametrize("value", [12345, 1.5, True, None, ["a"], {"a": 1}])
def test_clean_text_refuses_non_strings_instead_of_coercing(value):
    with pytest.raises(JSONInputError, match="^text must be a string") as info:
        clean_text(value, "text")
    assert info.value.field == "text"


def test_clean_text_refuses_nul_surrogates_empty_and_long():
    assert clean_text("fine", "text") == "fine"
    with pytest.raises(JSONInputError, match="NUL"):
        clean_text("a\x00", "text")
    with pytest.raises(JSONInputError, match="surrogate"):
        clean_text("a\ud800", "title")
    with pytest.raises(JSONInputError, match="empty"):
        clean_text("  ", "text", allow_empty=False)
    with pytest.raises(JSONInputError, match="longer than 3"):
        clean_text("abcd", "text", max_length=3)


def test_drf_parser_answers_400_with_detail_on_a_token_api(recommend_api):
    deep = "[" * 5000 + "]" * 5000
    r = recommend_api.post("/recommend/api/items/", deep, content_type="application/json")
    assert r.status_code == 400
    assert "nests deeper" in r.json()["detail"]


def test_strict_char_field_refuses_a_number():
    from rest_framework import serializers

    from apps.common.jsonparse import StrictCharField

    class S(serializers.Serializer):
        text = StrictCharField()

    s = S(data={"text": 12345})
    assert not s.is_valid()
    assert "text must be a string" in str(s.errors["text"][0])
    assert S(data={"text": "ok"}).is_valid()
