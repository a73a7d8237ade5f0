"""Route parameters as Neon's OpenAPI spec declares them: read from the spec, validated, converted.

Each route's path and query parameters (names, types, enums, bounds, defaults, patterns,
``required``) come from the ``parameters`` of its ``GET`` in the spec, so the simulator's 400s
follow what the spec declares. A violation is a 400; undeclared query parameters are ignored. What the spec says only in prose (the consumption metric names, how far back each
granularity reaches, that ``/projects`` needs ``org_id`` on an account with organizations) is
checked by the route handlers in :mod:`~neon_simulator.routes`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from .errors import ApiError
from .timestamps import parse_ts

#: Neon's OpenAPI spec of API v2, shipped with the simulator: the source of truth for its routes,
#: parameters and fields. It is Neon's own ``public-v2-for-users.gen.yaml`` from its TypeScript
#: client ``@neondatabase/api-client`` 2.7.3 (MIT).
SPEC_PATH = Path(__file__).with_name("neon-openapi-v2.yaml")
#: What Neon's live spec (2026-08-06) adds or changes, in our own words: paths and schemas laid over
#: the 2.7.3 file whole (project members, the new permission names, operation actions, PgVersion).
LIVE_OVERLAY_PATH = Path(__file__).with_name("neon-openapi-v2-live.yaml")

#: String formats the simulator checks, as the pattern a value must match.
_FORMATS = {"uuid": re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")}
#: The schema keywords :func:`_param` understands. Any other fails loudly when the routes are read,
#: so that a constraint a newer spec adds is never silently left unchecked.
_UNDERSTOOD = {
    "type",
    "format",
    "pattern",
    "enum",
    "default",
    "minimum",
    "maximum",
    "items",
    "minItems",
    "maxItems",
}


@cache
def spec() -> dict:
    """Neon's spec as the simulator follows it, read once per process (430 KB of YAML, about a
    quarter of a second): the 2.7.3 file with the live overlay's paths and schemas laid over it."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC_PATH.open() as handle:
        merged = yaml.load(handle, Loader=loader)
    with LIVE_OVERLAY_PATH.open() as handle:
        overlay = yaml.load(handle, Loader=loader)
    merged["paths"].update(overlay["paths"])
    merged["components"]["schemas"].update(overlay["components"]["schemas"])
    return merged


@dataclass(frozen=True)
class Param:
    """One path or query parameter as the spec declares it.

    ``kind`` is ``str``, ``int``, ``bool``, ``enum``, ``datetime`` or ``list`` (repeated and/or
    comma-separated values). Violations of type, bounds, enum, pattern or ``required`` are 400s.
    """

    kind: str = "str"
    required: bool = False
    default: Any = None
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    pattern: re.Pattern | None = None
    min_items: int = 0
    max_items: int | None = None


def parse_query(template: str, query: dict[str, list[str]]) -> dict[str, Any]:
    """Validate and convert the declared query parameters of ``GET template`` (undeclared ones are
    ignored); an absent one takes the spec's default, or ``None``."""
    values: dict[str, Any] = {}
    for name, param in query_params(template).items():
        raw = query.get(name)
        if not raw:
            if param.required:
                raise ApiError(400, f"query parameter {name!r} is required")
            values[name] = param.default
            continue
        if param.kind == "list":
            values[name] = _parse_list(name, raw, param)
        else:
            values[name] = _parse_scalar(name, raw[0], param)
    return values


def _parse_scalar(name: str, raw: str, param: Param) -> Any:
    if param.kind == "int":
        try:
            value = int(raw)
        except ValueError:
            raise ApiError(400, f"query parameter {name!r} must be an integer, got {raw!r}") from None
        if (param.minimum is not None and value < param.minimum) or (
            param.maximum is not None and value > param.maximum
        ):
            raise ApiError(
                400, f"query parameter {name!r} must be between {param.minimum} and {param.maximum}"
            )
        return value
    if param.kind == "bool":
        if raw not in ("true", "false"):
            raise ApiError(400, f"query parameter {name!r} must be true or false, got {raw!r}")
        return raw == "true"
    if param.kind == "enum":
        if raw not in param.choices:
            raise ApiError(400, f"query parameter {name!r} must be one of {', '.join(param.choices)}")
        return raw
    if param.kind == "datetime":
        try:
            return parse_ts(raw)
        except ValueError:
            raise ApiError(
                400, f"query parameter {name!r} must be an RFC 3339 date-time, got {raw!r}"
            ) from None
    if param.pattern is not None and not param.pattern.match(raw):
        raise ApiError(400, f"query parameter {name!r} does not match {param.pattern.pattern}")
    return raw


def _parse_list(name: str, raw: list[str], param: Param) -> list[str]:
    if param.pattern is not None and not all(param.pattern.match(item) for item in raw):
        raise ApiError(400, f"query parameter {name!r} does not match {param.pattern.pattern}")
    items = [item for value in raw for item in value.split(",") if item]
    if param.required and not items:
        raise ApiError(400, f"query parameter {name!r} is required")
    if len(items) < param.min_items:
        raise ApiError(400, f"query parameter {name!r} needs at least {param.min_items} values")
    if param.max_items is not None and len(items) > param.max_items:
        raise ApiError(400, f"query parameter {name!r} accepts at most {param.max_items} values")
    return list(dict.fromkeys(items))


def path_params(template: str) -> dict[str, Param]:
    """The path parameters of ``GET template``, by name."""
    return _declared(template)["path"]


def query_params(template: str) -> dict[str, Param]:
    """The query parameters of ``GET template``, by name, in the spec's order."""
    return _declared(template)["query"]


def check_path(template: str, values: dict[str, str]) -> None:
    """A 400 unless every path parameter matches the pattern (or format) the spec declares."""
    for name, param in path_params(template).items():
        if param.pattern is not None and not param.pattern.match(values[name]):
            raise ApiError(400, f"invalid path parameter {values[name]!r}")


@cache
def _declared(template: str) -> dict[str, dict[str, Param]]:
    """The parameters of ``GET template``: the path item's, then the operation's (which win)."""
    path_item = spec()["paths"][template]
    found: dict[str, dict[str, Param]] = {"path": {}, "query": {}}
    for node in [*path_item.get("parameters", []), *path_item["get"].get("parameters", [])]:
        declared = _resolve(node)
        if declared["in"] not in found:
            raise ValueError(f"{template}: {declared['in']} parameter {declared['name']!r} is not supported")
        found[declared["in"]][declared["name"]] = _param(template, declared)
    return found


def _param(template: str, declared: dict) -> Param:
    """The :class:`Param` of one parameter object of the spec."""
    where = f"{template}: parameter {declared['name']!r}"
    schema = _understood(where, _resolve(declared["schema"]))
    common = {"required": declared.get("required", False), "default": schema.get("default")}
    kind = schema["type"]
    if kind == "integer":
        return Param("int", minimum=schema.get("minimum"), maximum=schema.get("maximum"), **common)
    if kind == "boolean":
        return Param("bool", **common)
    if kind == "array":
        items = _understood(where, _resolve(schema["items"]))
        if items.keys() - {"type", "pattern", "format"} or items["type"] != "string":
            raise ValueError(f"{where}: its items {items} are not checked here")
        # minItems and maxItems count values, repeated or comma-separated (the spec: "up to 100"
        # project ids).
        return Param(
            "list",
            pattern=_pattern(items),
            min_items=schema.get("minItems", 0),
            max_items=schema.get("maxItems"),
            **common,
        )
    if kind != "string":
        raise ValueError(f"{where}: type {kind} is not checked here")
    if "enum" in schema:
        return Param("enum", choices=tuple(schema["enum"]), **common)
    if schema.get("format") == "date-time":
        return Param("datetime", **common)
    return Param(pattern=_pattern(schema), **common)


def _understood(where: str, schema: dict) -> dict:
    """``schema`` without its description, or a ``ValueError`` if it has a keyword not checked here."""
    schema = {k: v for k, v in schema.items() if k != "description"}
    if schema.keys() - _UNDERSTOOD:
        raise ValueError(f"{where}: {sorted(schema.keys() - _UNDERSTOOD)} are not checked here")
    return schema


def _pattern(schema: dict) -> re.Pattern | None:
    """What a string must match: the schema's ``pattern``, else its ``format``, if either is given."""
    if "pattern" in schema:
        return re.compile(schema["pattern"])
    if "format" in schema:
        return _FORMATS[schema["format"]]
    return None


def _resolve(node: dict) -> dict:
    """``node``, or the spec object its ``$ref`` (``#/components/...``) points at."""
    while "$ref" in node:
        found = spec()
        for part in node["$ref"].removeprefix("#/").split("/"):
            found = found[part]
        node = found
    return node
