"""The raw tables' shapes, checked against Neon's OpenAPI spec: a renamed or retyped API field
shows up here as a failing test, not as a silently empty column."""

from __future__ import annotations

import pytest
from neon_api_source import settings
from spec import dlt_type, schema


@pytest.mark.parametrize("table", sorted(settings.SPEC_SCHEMAS))
def test_every_column_is_a_spec_field_of_the_same_type(table):
    schema_name, columns = settings.SPEC_SCHEMAS[table]
    properties = schema(schema_name)["properties"]
    for column, data_type in columns.items():
        assert column in properties, f"{table}.{column} is not a field of {schema_name}"
        assert dlt_type(properties[column]) == data_type, f"{table}.{column}"


@pytest.mark.parametrize("table", sorted(settings.SPEC_SCHEMAS))
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
    schema_name, columns = settings.SPEC_SCHEMAS[table]
    required = set(schema(schema_name).get("required", []))
    missing = required - set(columns) - deliberately_dropped.get(table, set())
    assert not missing, f"{table} drops required fields {sorted(missing)}"


def test_credentials_are_never_columns():
    for _, columns in settings.SPEC_SCHEMAS.values():
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
    decided = {(table, column) for table, column in settings.EMAIL_COLUMNS.items()} | {("endpoints", "host")}
    landed = set()
    for table, (schema_name, columns) in settings.SPEC_SCHEMAS.items():
        sensitive = set(schema(schema_name).get("x-sensitive", []))
        landed |= {(table.split(" ")[0], column) for column in sensitive & set(columns)}
    assert landed == decided
