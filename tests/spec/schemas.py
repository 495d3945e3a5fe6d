"""Validate localbox's answers against the official OpenAPI schemas in openai-schemas.json.

The schemas are JSON Schema 2020-12 (OpenAPI 3.1). Two changes are made before validating:

* OpenAPI 3.0's ``nullable: true`` (which 2020-12 does not know) becomes a union with null;
* objects are closed: a field the spec does not declare is an error, so an answer matches
  the spec field by field (``unevaluatedProperties: false`` at the outermost schema of each
  object, which sees the fields that allOf/anyOf/oneOf members declare). Objects the spec
  leaves free-form (no declared properties) stay open.

A failure names each difference by its place in the answer (for a union, in the alternative
the answer's `type` picks), without the knock-on reports closing causes.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

FIXTURE = Path(__file__).resolve().parent / "openai-schemas.json"
PREFIX = "#/components/schemas/"
OPEN = "__open"
"""Suffix of a schema's copy that is left open (for use as an allOf member)."""

IN_PLACE = ("allOf", "anyOf", "oneOf")
NAMED = ("properties", "patternProperties", "$defs", "dependentSchemas")
SINGLE = (
    "items",
    "additionalProperties",
    "unevaluatedProperties",
    "propertyNames",
    "contains",
    "not",
    "if",
    "then",
    "else",
)
LISTS = ("prefixItems",)


@cache
def fixture() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return data


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI 3.0's nullable as 2020-12 says it."""
    if not node.pop("nullable", False):
        return node
    kind = node.get("type")
    if isinstance(kind, str):
        node["type"] = [kind, "null"]
        if "enum" in node and None not in node["enum"]:
            node["enum"] = [*node["enum"], None]
        return node
    if isinstance(kind, list):
        node["type"] = [*kind, "null"] if "null" not in kind else kind
        return node
    return {"anyOf": [node, {"type": "null"}]}


def _is_object_schema(node: dict[str, Any]) -> bool:
    """Whether the node (with its in-place members) may declare an object's fields."""
    return "properties" in node or any(k in node for k in (*IN_PLACE, "$ref"))


def _free_form(node: dict[str, Any]) -> bool:
    """An object (or anything) whose fields the spec leaves open."""
    kind = node.get("type")
    if kind is None:
        return not (set(node) - {"default", "format", "discriminator"})
    is_object = kind == "object" or (isinstance(kind, list) and "object" in kind)
    shaped = any(
        k in node
        for k in ("properties", "patternProperties", "additionalProperties", "$ref", *IN_PLACE)
    )
    return is_object and not shaped


def _prepare(node: Any, open_: bool) -> Any:
    """A schema node made strict (see the module docstring). ``open_`` marks an in-place
    member (of allOf/anyOf/oneOf, or a $ref's target there) that must not close itself:
    the outermost schema of the object does."""
    if isinstance(node, list):
        return [_prepare(v, False) for v in node]
    if not isinstance(node, dict):
        return node
    node = _nullable(dict(node))
    # A node that only points elsewhere lets its target close itself; one that adds fields
    # or members next to the $ref closes here, over the target's open copy.
    delegates = "$ref" in node and not any(k in node for k in ("properties", *IN_PLACE))
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in IN_PLACE:
            out[key] = [_member(v) for v in value]
        elif key in NAMED and isinstance(value, dict):
            out[key] = {name: _prepare(child, False) for name, child in value.items()}
        elif key in SINGLE and isinstance(value, dict):
            out[key] = _prepare(value, False)
        elif key in LISTS and isinstance(value, list):
            out[key] = [_prepare(v, False) for v in value]
        elif key == "$ref" and (open_ or not delegates):
            out[key] = value + OPEN
        else:
            out[key] = value
    if open_:
        if _free_form(out):
            out["additionalProperties"] = True
    elif not delegates and _is_object_schema(out) and not _declares_rest(out):
        out["unevaluatedProperties"] = False
    return out


def _member(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    return _prepare(node, True)


def _declares_rest(node: dict[str, Any]) -> bool:
    return "additionalProperties" in node or "unevaluatedProperties" in node


@cache
def _components() -> dict[str, Any]:
    schemas = fixture()["components"]["schemas"]
    prepared: dict[str, Any] = {}
    for name, schema in schemas.items():
        prepared[name] = _prepare(schema, False)
        prepared[name + OPEN] = _prepare(schema, True)
    return {"schemas": prepared}


@cache
def validator(name: str) -> Draft202012Validator:
    if name not in fixture()["components"]["schemas"]:
        raise KeyError(
            f"{name} is not in {FIXTURE.name}; add it to scripts/extract_spec_schemas.py"
        )
    schema = {"$ref": PREFIX + name, "components": _components()}
    return Draft202012Validator(schema)


def problems(instance: Any, name: str) -> list[str]:
    """What is wrong with instance as the spec's schema `name` (empty when it conforms)."""
    causes = [c for e in validator(name).iter_errors(instance) for c in _causes(e)]
    return [f"{'/'.join(map(str, path)) or '(top)'}: {message}" for path, message in _kept(causes)]


Cause = tuple[tuple[Any, ...], str | None, str]
"""Where (the instance path), which keyword failed, and the message."""


def _kept(causes: list[Cause]) -> list[tuple[tuple[Any, ...], str]]:
    """The causes without the knock-on ones: a subschema that fails keeps its fields'
    annotations to itself, so the object around it also reports those fields as unexpected.
    Such a report is left out when something at or below its place failed for another reason,
    or something below it was unexpected."""

    def below(path: tuple[Any, ...], other: tuple[Any, ...], strictly: bool) -> bool:
        return other[: len(path)] == path and (len(other) > len(path) or not strictly)

    kept = []
    for path, keyword, message in causes:
        if keyword == "unevaluatedProperties" and any(
            below(path, other, strictly=other_keyword == "unevaluatedProperties")
            for other, other_keyword, _ in causes
            if (other, other_keyword) != (path, keyword)
        ):
            continue
        if (path, message) not in kept:
            kept.append((path, message))
    return kept


def _causes(error: ValidationError) -> list[Cause]:
    """The error's causes; for a union, those of the one alternative whose type (JSON type,
    or `type` field) the instance has, which is the one it meant to be, rather than a guess."""
    if error.validator in ("oneOf", "anyOf") and error.context:
        branches: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.schema_path[0], []).append(sub)
        meant = [
            errs
            for errs in branches.values()
            if not any(tuple(e.relative_path) == ("type",) for e in errs)
            and not any(e.validator == "type" and not e.relative_path for e in errs)
        ]
        if len(meant) == 1:
            return [c for sub in meant[0] for c in _causes(sub)]
    deepest = best_match([error])
    return [(tuple(deepest.absolute_path), str(deepest.validator), deepest.message)]


def check(instance: Any, name: str) -> None:
    """Fail with every difference when instance does not conform to schema `name`."""
    found = problems(instance, name)
    assert not found, f"not a valid {name}:\n" + "\n".join(found) + "\n" + _short(instance)


def event_schema(event_type: str) -> str:
    events: dict[str, str] = fixture()["events"]
    assert event_type in events, f"the spec has no stream event {event_type!r}"
    return events[event_type]


def check_event(event: dict[str, Any]) -> None:
    check(event, event_schema(str(event.get("type"))))


def _short(instance: Any) -> str:
    def cut(value: Any) -> Any:
        if isinstance(value, str) and len(value) > 100:
            return value[:100] + "..."
        if isinstance(value, list):
            return [cut(v) for v in value]
        if isinstance(value, dict):
            return {k: cut(v) for k, v in value.items()}
        return value

    text = json.dumps(cut(instance), indent=1)
    return text if len(text) < 6000 else text[:6000] + "..."
