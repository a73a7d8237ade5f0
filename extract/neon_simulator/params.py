"""Query parameters: how each route's parameters are declared, validated and converted.

A violation of type, bounds, enum, pattern or ``required`` is a 400; undeclared parameters are
ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ApiError
from .timestamps import parse_ts

#: Neon's OpenAPI spec of API v2, shipped with the simulator: the source of truth for its routes,
#: parameters and fields. It is Neon's own ``public-v2-for-users.gen.yaml`` from its TypeScript
#: client ``@neondatabase/api-client`` 2.7.3 (MIT).
SPEC_PATH = Path(__file__).with_name("neon-openapi-v2.yaml")

_ID_PATTERN = re.compile(r"^[a-z0-9-]{1,60}$")
_PROJECT_IDS_PATTERN = re.compile(r"^([a-z0-9-]{1,60}(,[a-z0-9-]{1,60}){0,99})?$")


@dataclass(frozen=True)
class Param:
    """One query parameter as the spec declares it.

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
    max_items: int | None = None


def parse_query(query: dict[str, list[str]], params: dict[str, Param]) -> dict[str, Any]:
    """Validate and convert the declared parameters of a query (undeclared ones are ignored)."""
    values: dict[str, Any] = {}
    for name, param in params.items():
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
    if param.max_items is not None and len(items) > param.max_items:
        raise ApiError(400, f"query parameter {name!r} accepts at most {param.max_items} values")
    return list(dict.fromkeys(items))


_ORG_ID = Param(pattern=_ID_PATTERN)
_PROJECTS_PARAMS = {
    "cursor": Param(),
    "limit": Param("int", default=10, minimum=1, maximum=400),
    "search": Param(),
    "org_id": _ORG_ID,
    "timeout": Param("int", minimum=100, maximum=30000),
    "recoverable": Param("bool", default=False),
}
_SHARED_PROJECTS_PARAMS = {k: v for k, v in _PROJECTS_PARAMS.items() if k not in ("org_id", "recoverable")}
_BRANCHES_PARAMS = {
    "search": Param(),
    "sort_by": Param("enum", choices=("name", "created_at", "updated_at")),
    "cursor": Param(),
    "sort_order": Param("enum", choices=("asc", "desc")),
    "limit": Param("int", minimum=1, maximum=10000),
    "include_deleted": Param("bool", default=False),
}
_OPERATIONS_PARAMS = {"cursor": Param(), "limit": Param("int", minimum=1, maximum=1000)}
_CONSUMPTION_PARAMS = {
    "cursor": Param(),
    "limit": Param("int", default=10, minimum=1, maximum=100),
    "project_ids": Param("list", default=[], pattern=_PROJECT_IDS_PATTERN, max_items=100),
    "from": Param("datetime", required=True),
    "to": Param("datetime", required=True),
    "granularity": Param("enum", required=True, choices=("hourly", "daily", "monthly")),
    "org_id": Param(required=True, pattern=_ID_PATTERN),
    "metrics": Param("list", required=True),
}
_REGIONS_PARAMS = {"org_id": _ORG_ID}
