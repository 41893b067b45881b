"""The stdlib validator (device/contract/schema) rule by rule, on a small schema written here: each keyword
it supports accepts what it should, refuses what it should, and names the field in one line."""
from __future__ import annotations

import math

import pytest

from device.contract import schema

S = {
    "type": "object",
    "required": ["n", "kind"],
    "properties": {
        "n": {"type": "integer", "minimum": 1, "maximum": 10},
        "x": {"type": ["number", "null"], "minimum": 0.5},
        "kind": {"enum": ["a", "b"]},
        "fixed": {"const": "v2"},
        "flag": {"type": "boolean"},
        "name": {"type": "string"},
        "items": {"type": "array", "items": {"$ref": "#/$defs/item"}},
    },
    "$defs": {"item": {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}},
}


def check(doc, schema_doc=S):
    schema.validate(doc, schema_doc)


def error(doc, schema_doc=S) -> str:
    with pytest.raises(ValueError) as exc:
        schema.validate(doc, schema_doc)
    return str(exc.value)


def test_good_documents_pass():
    check({"n": 1, "kind": "a"})
    check({"n": 10, "kind": "b", "x": None, "fixed": "v2", "flag": False, "name": "", "items": [{"id": 0}],
           "extra": object()})
    check({"n": 5, "kind": "a", "x": 0.5})


@pytest.mark.parametrize("doc,message", [
    ({"kind": "a"}, "$: missing required field 'n'"),
    ({"n": 1}, "$: missing required field 'kind'"),
    ({"n": 0, "kind": "a"}, "$.n: 0 is below the minimum 1"),
    ({"n": 11, "kind": "a"}, "$.n: 11 is above the maximum 10"),
    ({"n": 1.0, "kind": "a"}, "$.n: expected integer, got number"),
    ({"n": True, "kind": "a"}, "$.n: expected integer, got boolean"),
    ({"n": 1, "kind": "a", "x": True}, "$.x: expected number or null, got boolean"),
    ({"n": 1, "kind": "a", "x": "1"}, "$.x: expected number or null, got string"),
    ({"n": 1, "kind": "a", "x": 0.4}, "$.x: 0.4 is below the minimum 0.5"),
    ({"n": 1, "kind": "a", "x": math.nan}, "$.x: NaN is not allowed"),
    ({"n": 1, "kind": "c"}, "$.kind: 'c' is not one of ['a', 'b']"),
    ({"n": 1, "kind": "a", "fixed": "v1"}, "$.fixed: expected 'v2', got 'v1'"),
    ({"n": 1, "kind": "a", "flag": 0}, "$.flag: expected boolean, got integer"),
    ({"n": 1, "kind": "a", "name": None}, "$.name: expected string, got null"),
    ({"n": 1, "kind": "a", "items": {}}, "$.items: expected array, got object"),
    ({"n": 1, "kind": "a", "items": [{"id": 1}, {}]}, "$.items[1]: missing required field 'id'"),
    ({"n": 1, "kind": "a", "items": [{"id": 1}, {"id": "2"}]}, "$.items[1].id: expected integer, got string"),
    ({"n": 1, "kind": "a", "items": [(1,)]}, "$.items[0]: expected object, got tuple"),
    ([], "$: expected object, got array"),
])
def test_each_rule_names_the_field(doc, message):
    assert error(doc) == message


def test_nan_is_refused_even_without_limits():
    assert error(math.nan, {"type": "number"}) == "$: NaN is not allowed"
    check(math.inf, {"type": "number"})


def test_limits_apply_to_numbers_only():
    check("x", {"minimum": 5, "maximum": 1})
    assert error(7, {"maximum": 6}) == "$: 7 is above the maximum 6"
    check(6, {"maximum": 6, "minimum": 6})
    check(True, {"minimum": 5})   # a boolean is not a number here


def test_refs():
    assert error(1, {"$ref": "http://elsewhere/x"}) == "schema: unsupported $ref http://elsewhere/x"
    nested = {"$defs": {"a": {"b": {"type": "string"}}}, "$ref": "#/$defs/a/b"}
    check("s", nested)
    assert error(1, nested) == "$: expected string, got integer"


def test_the_project_schema_is_loaded_once():
    first = schema.load_schema()
    assert first is schema.load_schema()
    assert first["properties"]["schema"]["const"] == schema.SCHEMA_ID
    with pytest.raises(ValueError, match=r"^\$: missing required field 'schema'$"):
        schema.validate({})


def test_items_apply_to_arrays_only():
    check("abc", {"items": {"type": "integer"}})
    check({"k": "v"}, {"items": {"type": "integer"}})


def test_the_schema_file_is_read_when_not_cached(monkeypatch):
    monkeypatch.setattr(schema, "_cache", {})
    doc = schema.load_schema()
    assert doc["$id"] == schema.SCHEMA_ID and schema._cache == {"schema": doc}
