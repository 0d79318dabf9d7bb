"""Check a JSON body against a schema cut from a provider's own OpenAPI document
(``tests/fixtures/openapi/*.json``; each names its source in ``x-source``)."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

FIXTURES = Path(__file__).parents[1] / "fixtures" / "openapi"


@cache
def _document(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return _as_json_schema(copy.deepcopy(document))


def _as_json_schema(node: Any) -> Any:
    """Two OpenAPI habits read as their authors meant them: ``nullable: true``
    (OpenAPI 3.0; JSON Schema says type ``[t, "null"]``), and ``oneOf`` over branches
    that overlap (Replicate's ``version`` is any string *or* ``"hidden"``, which
    JSON Schema's exactly-one ``oneOf`` refuses), read as ``anyOf``."""
    if isinstance(node, dict):
        node = {key: _as_json_schema(value) for key, value in node.items()}
        if "oneOf" in node:
            node["anyOf"] = node.pop("oneOf")
        if node.pop("nullable", False):
            if "type" in node:
                node["type"] = [node["type"], "null"]
            else:
                node = {"anyOf": [node, {"type": "null"}]}
        return node
    if isinstance(node, list):
        return [_as_json_schema(value) for value in node]
    return node


def _closed(node: Any) -> Any:
    """Every object schema that lists its properties refuses others (unless it says
    which others it takes): a key the document never names is a mismatch too."""
    if isinstance(node, dict):
        node = {key: _closed(value) for key, value in node.items()}
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [_closed(value) for value in node]
    return node


def problems(document: str, schema: str, body: Any, *, closed: bool = False) -> list[str]:
    """What in ``body`` breaks ``components.schemas[schema]`` of ``document`` (empty:
    it conforms). ``closed``: also refuse keys the document does not name."""
    components = _document(document)["components"]
    if closed:
        components = _closed(components)
    root = {"components": components, "$ref": f"#/components/schemas/{schema}"}
    validator = Draft202012Validator(root, format_checker=FormatChecker())
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in validator.iter_errors(body)
    ]


def assert_conforms(document: str, schema: str, body: Any, *, closed: bool = False) -> None:
    found = problems(document, schema, body, closed=closed)
    assert not found, f"{document} {schema}: " + "; ".join(found)
