"""The documentation analysts read: every mart column has a description in the docs site and in
the warehouse's catalog, and the query on the docs site's front page runs.

`dbt docs generate` builds catalog.json from the warehouse's own comments (dbt-duckdb reads
`duckdb_tables()` / `duckdb_columns()`), which `persist_docs` wrote during the session's build;
the site shows the manifest's descriptions. Both are read here without starting dbt again.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from expected import query
from suite import REPO

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


def test_the_docs_front_page_s_python_query_runs_as_written(demo_warehouse, demo_account, tmp_path):
    """The one-liner of `make docs`' front page, run from a folder laid out as the repository root
    (its `.venv`, the warehouse under the name `make demo` gives it), shows the estate's counts."""
    page = (REPO / "dbt_project/models/_overview.md").read_text()
    (command,) = re.findall(r"^```sh\n(.*?)\n```", page, re.S | re.M)
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    (tmp_path / "neon_api_pipeline.duckdb").symlink_to(demo_warehouse)
    shown = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    header, *_, row = [line for line in shown.stdout.splitlines() if line.startswith("│")]
    cells = [[cell.strip() for cell in line.strip("│").split("│")] for line in (header, row)]
    values = dict(zip(*cells, strict=True))
    assert int(values["project_count"]) == len(demo_account.all_projects()), shown.stdout
