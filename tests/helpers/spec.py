"""Neon's OpenAPI spec, as the simulator reads it (once per process), resolved for tests."""

from __future__ import annotations

from neon_simulator.params import spec


def resolve(node: dict) -> dict:
    """Follow `$ref`s and merge `allOf`s into one schema dict."""
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = {**spec()["components"]["schemas"][name], **{k: v for k, v in node.items() if k != "$ref"}}
    if "allOf" in node:
        merged: dict = {}
        for part in node["allOf"]:
            part = resolve(part)
            merged.setdefault("properties", {}).update(part.get("properties", {}))
            merged.setdefault("required", []).extend(part.get("required", []))
            for key in ("type", "format", "enum"):
                if key in part:
                    merged[key] = part[key]
        rest = {k: v for k, v in node.items() if k != "allOf"}
        node = {**merged, **rest}
    return node


def schema(name: str) -> dict:
    return resolve({"$ref": f"#/components/schemas/{name}"})


def dlt_type(property_schema: dict) -> str:
    """The dlt data type that holds a spec property."""
    prop = resolve(property_schema)
    kind = prop.get("type", "object")
    if kind == "string":
        return "timestamp" if prop.get("format") == "date-time" else "text"
    return {"integer": "bigint", "number": "double", "boolean": "bool"}.get(kind, "json")
