"""The results contract: result-v2.json and a small stdlib-only validator for it.

A full JSON Schema library is too heavy for a board, so this checks the subset the schema uses:
type, required, properties, items, enum, const, minimum, maximum and local $ref.
"""
from __future__ import annotations

import json
import pkgutil
from typing import Any, Optional

SCHEMA_ID = "edgekit/result-v2"
SCHEMA_FILE = "result-v2.json"
_cache: dict = {}

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "null": lambda v: v is None,
}


def load_schema() -> dict:
    """The schema document (read with pkgutil so it also works from inside agent.pyz)."""
    if "schema" not in _cache:
        _cache["schema"] = json.loads(pkgutil.get_data(__name__, SCHEMA_FILE).decode("utf-8"))
    return _cache["schema"]


def validate(doc: Any, schema: Optional[dict] = None) -> None:
    """Raise ValueError with a one-line message naming the first offending field."""
    root = schema or load_schema()
    _check(doc, root, root, "$")


def _type_name(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _TYPES[name](value):
            return name
    return type(value).__name__


def _check(value: Any, node: dict, root: dict, where: str) -> None:
    if "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"schema: unsupported $ref {ref}")
        target = root
        for part in ref[2:].split("/"):
            target = target[part]
        _check(value, target, root, where)
    if "const" in node and value != node["const"]:
        raise ValueError(f"{where}: expected {node['const']!r}, got {value!r}")
    if "enum" in node and value not in node["enum"]:
        raise ValueError(f"{where}: {value!r} is not one of {node['enum']}")
    if "type" in node:
        allowed = node["type"] if isinstance(node["type"], list) else [node["type"]]
        if not any(_TYPES[t](value) for t in allowed):
            raise ValueError(f"{where}: expected {' or '.join(allowed)}, got {_type_name(value)}")
    if _TYPES["number"](value):
        if "minimum" in node and value < node["minimum"]:
            raise ValueError(f"{where}: {value} is below the minimum {node['minimum']}")
        if "maximum" in node and value > node["maximum"]:
            raise ValueError(f"{where}: {value} is above the maximum {node['maximum']}")
        if isinstance(value, float) and value != value:
            raise ValueError(f"{where}: NaN is not allowed")
    if isinstance(value, dict):
        for key in node.get("required", []):
            if key not in value:
                raise ValueError(f"{where}: missing required field {key!r}")
        for key, sub in node.get("properties", {}).items():
            if key in value:
                _check(value[key], sub, root, f"{where}.{key}")
    if isinstance(value, list) and "items" in node:
        for i, item in enumerate(value):
            _check(item, node["items"], root, f"{where}[{i}]")
