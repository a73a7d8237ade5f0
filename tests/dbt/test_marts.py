"""The marts against the simulator: every number is computed from the account the simulator
served, never typed in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from expected import branch_facts, query, query_dicts, region_facts
from suite import REPO

# runs the pipeline, dbt or a server: `make test-fast` leaves it out
pytestmark = pytest.mark.slow

INVENTORY_COLUMNS = (
    "project_id",
    "project_name",
    "region_id",
    "branch_name",
    "parent_branch_id",
    "is_default",
    "database_count",
    "role_count",
    "endpoint_count",
    "logical_size_bytes",
)


def test_inventory_has_one_row_per_branch_with_its_counts(demo_account, demo_warehouse):
    expected = branch_facts(demo_account)
    rows = query_dicts(
        demo_warehouse,
        f"select branch_id, {', '.join(INVENTORY_COLUMNS)} from marts.project_branch_inventory",
    )
    assert len(rows) == len(expected)
    actual = {row.pop("branch_id"): row for row in rows}
    assert actual == expected


def test_regional_footprint_lists_every_region_even_without_projects(demo_account, demo_warehouse):
    expected = region_facts(demo_account)
    empty_regions = {rid for rid, facts in expected.items() if facts["project_count"] == 0}
    assert empty_regions, "the simulator should list a region without projects"

    rows = query_dicts(
        demo_warehouse,
        "select region_id, region_name, project_count, branch_count, database_count, "
        "endpoint_count, total_logical_size_bytes from marts.regional_footprint",
    )
    actual = {row.pop("region_id"): row for row in rows}
    assert set(actual) == set(expected)
    for region_id, facts in expected.items():
        assert actual[region_id] == {
            "region_name": facts["region_name"],
            "project_count": facts["project_count"],
            "branch_count": facts["branch_count"],
            "database_count": facts["database_count"],
            "endpoint_count": facts["endpoint_count"],
            "total_logical_size_bytes": facts["total_logical_size_bytes"],
        }, region_id


def test_dbt_builds_exactly_the_staging_and_marts_schemas(demo_warehouse):
    schemas = {
        schema
        for (schema,) in query(
            demo_warehouse,
            "select distinct table_schema from information_schema.tables "
            "where table_schema not like 'neon_api_data%'",
        )
    }
    assert schemas == {"staging", "marts"}


# The README's form for a warehouse outside the working folder (another folder, NEON_DUCKDB_PATH):
# the file named by its path and opened read-only, so that it reads alongside other readers (the
# notebook, a `duckdb -readonly` session), which dlt's default read-write opening cannot.
READ_THROUGH_DLT = """
import sys
import dlt
pipeline = dlt.pipeline(
    "neon_api_pipeline",
    destination=dlt.destinations.duckdb({"database": sys.argv[1], "read_only": True}),
    dataset_name="neon_api_data",
)
dataset = pipeline.dataset()
print(len(dataset.projects.df()))
print(len(dataset.project_branches.df()))
"""


def test_the_readme_s_dlt_habits_read_the_warehouse(demo_account, demo_warehouse, tmp_path):
    """The README's way in for users of dltHub's page from elsewhere: the pipeline's dataset as
    DataFrames while another reader holds the file, and `dlt pipeline neon_api_pipeline info`.
    (The page's bare snippet, from the warehouse's folder, is in test_dlthub_habits.py.)"""
    warehouse = tmp_path / "warehouse" / "neon_api_pipeline.duckdb"
    warehouse.parent.mkdir()
    shutil.copyfile(demo_warehouse, warehouse)
    repo_files = set(REPO.iterdir())
    env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false"}
    with duckdb.connect(str(warehouse), read_only=True):  # another reader, all along
        read = subprocess.run(
            [sys.executable, "-c", READ_THROUGH_DLT, str(warehouse)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert read.returncode == 0, read.stderr[-2000:]
    projects, branches = map(int, read.stdout.split())
    assert projects == len(demo_account.all_projects())  # one run: one version per project
    assert branches == sum(len(demo_account.branches(p["id"])) for p in demo_account.all_projects())

    info = subprocess.run(
        [str(Path(sys.executable).with_name("dlt")), "pipeline", "neon_api_pipeline", "info"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert info.returncode == 0, info.stderr[-2000:]
    assert "dataset_name: neon_api_data" in info.stdout
    assert set(REPO.iterdir()) == repo_files  # nothing, no empty database either, lands in the repository
