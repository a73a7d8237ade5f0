"""The raw tables' shapes, checked against Neon's OpenAPI spec: a renamed or retyped API field
shows up here as a failing test, not as a silently empty column."""

from __future__ import annotations

import pytest
from neon_api_source import listings, settings
from spec import dlt_type, resolve, schema, spec


@pytest.mark.parametrize("table", sorted(listings.SPEC_SCHEMAS))
def test_every_column_is_a_spec_field_of_the_same_type(table):
    schema_name, columns = listings.SPEC_SCHEMAS[table]
    properties = schema(schema_name)["properties"]
    for column, data_type in columns.items():
        assert column in properties, f"{table}.{column} is not a field of {schema_name}"
        assert dlt_type(properties[column]) == data_type, f"{table}.{column}"


@pytest.mark.parametrize("table", sorted(listings.SPEC_SCHEMAS))
def test_required_spec_fields_are_kept_unless_deliberately_dropped(table):
    """Required fields are the ones every row has; dropping one must be a decision, listed here."""
    deliberately_dropped = {
        "projects": {"applications"},  # not a ProjectListItem field; listed for completeness
        "project_branches": set(),
        "endpoints": {"proxy_host"},  # deprecated alias of `host`
        # the creator's id lands as created_by_user_id; their name and avatar are not needed
        "organization_api_keys": {"created_by"},
        # a deleted branch: what identifies it and its recovery; its last state and counters are
        # in the branch's own history
        "deleted_branches": {
            "current_state",
            "state_changed_at",
            "creation_source",
            "default",
            "protected",
            "updated_at",
            "cpu_used_sec",
            "active_time_seconds",
            "compute_time_seconds",
            "written_data_bytes",
            "data_transfer_bytes",
        },
    }
    schema_name, columns = listings.SPEC_SCHEMAS[table]
    required = set(schema(schema_name).get("required", []))
    missing = required - set(columns) - deliberately_dropped.get(table, set())
    assert not missing, f"{table} drops required fields {sorted(missing)}"


def test_credentials_are_never_columns():
    for _, columns in listings.SPEC_SCHEMAS.values():
        assert not set(columns) & settings.CREDENTIAL_KEYS


def test_every_operation_action_of_the_spec_has_a_decided_effect():
    """The incremental plan knows, for each of Neon's operation actions, what it can change."""
    actions = set(schema("OperationAction")["enum"])
    assert set(settings.OPERATION_EFFECTS) == actions
    assert set(settings.OPERATION_EFFECTS.values()) <= {
        settings.NOTHING,
        settings.LISTINGS,
        settings.CONTENTS,
    }


def test_fields_the_spec_marks_sensitive_land_only_where_decided():
    """Neon's spec marks personal data and secrets `x-sensitive`. Of those, the raw tables hold the
    email columns of the access review (hashed on request) and a compute's host name (loaded
    before the access review; a decision of its own), and nothing else."""
    decided = {(table, column) for table, column in listings.EMAIL_COLUMNS.items()} | {("endpoints", "host")}
    landed = set()
    for table, (schema_name, columns) in listings.SPEC_SCHEMAS.items():
        sensitive = set(schema(schema_name).get("x-sensitive", []))
        landed |= {(table.split(" ")[0], column) for column in sensitive & set(columns)}
    assert landed == decided


@pytest.mark.parametrize("listing", listings.LISTINGS, ids=lambda listing: listing.table)
def test_each_listing_is_read_where_and_as_the_spec_serves_it(listing):
    """A listing's route answers GET in the spec, its items sit under the envelope its description
    names (a bare array without one; a route that answers one object has the listing's columns), its page size is the largest the route accepts, and a listing
    that pages names the spec's paging field."""
    path = spec()["paths"][listing.route]
    operation = path["get"]
    responses = operation["responses"]
    answer = _follow(responses.get(200) or responses["200"])  # YAML and JSON spell the status apart
    body = resolve(answer["content"]["application/json"]["schema"])
    if listing.one_object:  # one object: the listing's columns are its fields
        assert set(listing.columns) <= set(body["properties"])
    else:
        items = body if listing.envelope is None else resolve(body["properties"][listing.envelope])
        assert items["type"] == "array"
    parameters = [_follow(p) for p in path.get("parameters", []) + operation.get("parameters", [])]
    limits = [resolve(p["schema"]).get("maximum") for p in parameters if p["name"] == "limit"]
    assert limits == ([listing.page_limit] if listing.page_limit else limits)
    if listing.paginator:
        paging = resolve(body["properties"]["pagination"])["properties"]
        assert listing.paginator in paging


def _follow(node: dict) -> dict:
    """A spec node with its `$ref`s (to any component: a parameter, a response) followed."""
    while "$ref" in node:
        target: dict = spec()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node
