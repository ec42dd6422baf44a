"""A deterministic instance of a JSON schema: what the sandbox answers for structured output and
for the arguments of a tool call, so clients that validate them (the openai SDK's `parse`, LangChain's
`with_structured_output`) get something valid without a model.

It covers what OpenAI's structured outputs allow (objects, arrays, scalars, enum, const, anyOf,
allOf, $ref into $defs) and the usual string formats and bounds. A `pattern` it cannot satisfy by
trying a few candidates is left unsatisfied.
"""
from __future__ import annotations

import math
import re

FORMATS = {
    "date-time": "2025-01-01T00:00:00Z", "date": "2025-01-01", "time": "00:00:00Z", "email": "sandbox@example.com",
    "uri": "https://example.com/sandbox", "url": "https://example.com/sandbox", "hostname": "example.com",
    "uuid": "00000000-0000-4000-8000-000000000000", "ipv4": "192.0.2.1", "ipv6": "2001:db8::1",
    "duration": "P1D",
}
PATTERN_CANDIDATES = ("sandbox", "a", "A", "0", "1", "abc", "ABC", "a1", "2025-01-01", "sandbox@example.com",
                      "https://example.com", "+10000000000", "")
MAX_DEPTH = 12


class SchemaError(ValueError):
    """A schema the sandbox cannot read (a $ref it cannot resolve, say)."""


def instance_of(schema: object, root: object = None, name: str = "value", depth: int = 0):
    root = schema if root is None else root
    if schema is True or schema is None or schema == {}:
        return f"sandbox {name}"
    if not isinstance(schema, dict):
        raise SchemaError("a schema must be an object")
    if depth > MAX_DEPTH:  # a recursive schema: stop where it allows it
        return None
    if "$ref" in schema:
        return instance_of(_resolve(schema["$ref"], root), root, name, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            # The first option that is not null: a field typed `X | None` gets an X.
            chosen = next((o for o in options if not (isinstance(o, dict) and o.get("type") == "null")), options[0])
            return instance_of({**_without(schema, combinator), **chosen}, root, name, depth + 1)
    if isinstance(schema.get("allOf"), list):
        merged = _without(schema, "allOf")
        for part in schema["allOf"]:
            part = _resolve(part["$ref"], root) if isinstance(part, dict) and "$ref" in part else part
            if isinstance(part, dict):
                merged = _merge(merged, part)
        return instance_of(merged, root, name, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        properties = schema.get("properties") or {}
        return {key: instance_of(sub, root, key, depth + 1) for key, sub in properties.items()}
    if kind == "array":
        count = max(1, schema.get("minItems") or 0)
        if isinstance(schema.get("maxItems"), int):
            count = min(count, schema["maxItems"])
        prefix = schema.get("prefixItems") if isinstance(schema.get("prefixItems"), list) else []
        items = [instance_of(sub, root, name, depth + 1) for sub in prefix]
        while len(items) < count:
            items.append(instance_of(schema.get("items", {}), root, name, depth + 1))
        return items
    if kind in ("integer", "number"):
        return _number(schema, kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(schema, name)


def _resolve(ref: object, root: object) -> dict:
    if not isinstance(ref, str) or not ref.startswith("#"):
        raise SchemaError(f"cannot resolve $ref {ref!r}: only references inside the schema are followed")
    node = root
    for part in [p for p in ref[1:].split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise SchemaError(f"cannot resolve $ref {ref!r}")
        node = node[part]
    if not isinstance(node, (dict, bool)):
        raise SchemaError(f"$ref {ref!r} is not a schema")
    return node if isinstance(node, dict) else {}


def _without(schema: dict, key: str) -> dict:
    return {k: v for k, v in schema.items() if k != key}


def _merge(one: dict, other: dict) -> dict:
    merged = {**one, **other}
    if "properties" in one or "properties" in other:
        merged["properties"] = {**(one.get("properties") or {}), **(other.get("properties") or {})}
    return merged


def _number(schema: dict, integer: bool):
    step = 1 if integer else 0.5
    low = schema.get("minimum")
    if isinstance(schema.get("exclusiveMinimum"), (int, float)) and not isinstance(schema["exclusiveMinimum"], bool):
        low = schema["exclusiveMinimum"] + step
    high = schema.get("maximum")
    if isinstance(schema.get("exclusiveMaximum"), (int, float)) and not isinstance(schema["exclusiveMaximum"], bool):
        high = schema["exclusiveMaximum"] - step
    value = low if low is not None else min(1, high) if high is not None else 1
    multiple = schema.get("multipleOf")
    if isinstance(multiple, (int, float)) and multiple > 0:
        value = math.ceil(value / multiple) * multiple
    if integer:
        value = math.ceil(value)
    return value


def _string(schema: dict, name: str) -> str:
    value = FORMATS.get(schema.get("format"), f"sandbox {name}")
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            compiled = re.compile(pattern)
        except re.error:
            compiled = None
        if compiled is not None and not compiled.search(value):
            value = next((c for c in PATTERN_CANDIDATES if compiled.search(c)), value)
    minimum, maximum = schema.get("minLength"), schema.get("maxLength")
    if isinstance(minimum, int) and len(value) < minimum:
        value = value + "x" * (minimum - len(value))
    if isinstance(maximum, int) and len(value) > maximum:
        value = value[:maximum]
    return value
