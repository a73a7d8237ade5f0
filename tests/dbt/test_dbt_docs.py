"""The documentation analysts read: every mart column has a description in the docs site and in
the warehouse's catalog.

`dbt docs generate` builds catalog.json from the warehouse's own comments (dbt-duckdb reads
`duckdb_tables()` / `duckdb_columns()`), which `persist_docs` wrote during the session's build;
the site shows the manifest's descriptions. Both are read here without starting dbt again.
"""

from __future__ import annotations

import json

import pytest
from expected import query

# runs the pipeline, dbt or a server: `make test-fast` leaves it out
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def marts(demo_build) -> dict[str, dict]:
    manifest = json.loads((demo_build.dbt_target / "manifest.json").read_text())
    return {
        node["name"]: node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["schema"] == "marts"
    }


def test_every_mart_column_is_described_in_the_catalog(demo_warehouse, marts):
    comments = {
        (table, column): comment
        for table, column, comment in query(
            demo_warehouse,
            "select table_name, column_name, comment from duckdb_columns() where schema_name = 'marts'",
        )
    }
    assert {table for table, _ in comments} == set(marts)
    for (table, column), comment in comments.items():
        described = marts[table]["columns"].get(column, {}).get("description", "")
        assert comment and comment.strip(), f"marts.{table}.{column} has no description in the catalog"
        assert comment == described, f"marts.{table}.{column}: catalog and docs disagree"


def test_every_mart_is_described_in_the_catalog(demo_warehouse, marts):
    comments = dict(
        query(demo_warehouse, "select table_name, comment from duckdb_tables() where schema_name = 'marts'")
    )
    for name, node in marts.items():
        assert comments[name] and comments[name] == node["description"], name


def test_doc_blocks_are_rendered_not_left_as_jinja(marts):
    for name, node in marts.items():
        for column, spec in node["columns"].items():
            assert "{{" not in spec["description"] and "{%" not in spec["description"], f"{name}.{column}"
