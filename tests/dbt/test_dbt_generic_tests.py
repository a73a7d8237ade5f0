"""The project's own generic tests fail on bad data and pass on good data.

The demo warehouse is clean, so the session's `dbt build` only shows that the tests pass. Here a
small dbt project, holding copies of dbt_project/tests/generic, builds models from rows written
below (good ones and broken ones) and runs the generic tests on them, in one `dbt build`. Each
expected failure count is computed here, in Python, from the same rows.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from expected import dbt_vars
from suite import REPO

# runs the pipeline, dbt or a server: `make test-fast` leaves it out
pytestmark = pytest.mark.slow

GENERIC_TESTS = REPO / "dbt_project" / "tests" / "generic"
MACROS = REPO / "dbt_project" / "macros"


def _sql_value(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return f"timestamp '{value:%Y-%m-%d %H:%M:%S}'"
    return "'" + str(value).replace("'", "''") + "'"


def _model_sql(columns: list[str], rows: list[tuple]) -> str:
    values = ",\n    ".join("(" + ", ".join(_sql_value(v) for v in row) + ")" for row in rows)
    return f"select * from (\n    values\n    {values}\n) as rows_written_here ({', '.join(columns)})\n"


# --- reference implementations: what each test should report, from the rows alone -------------


def key_violations(rows: list[tuple]) -> int:
    """Keys that repeat, or have a NULL part: one failing row per such key."""
    counts = Counter(rows)
    return sum(1 for key, n in counts.items() if n > 1 or any(part is None for part in key))


def groups_without_exactly_one(rows: list[tuple[str, bool]]) -> int:
    matching = defaultdict(int)
    for group, flag in rows:
        matching[group] += 1 if flag else 0
    return sum(1 for n in matching.values() if n != 1)


def forest_violations(rows: list[tuple[str, str | None, str]]) -> int:
    """(node, parent, group): one row per node whose parent is missing from its group, plus one
    per node not reached by walking down from a root of its group."""
    nodes = {(node, group) for node, _, group in rows}
    missing = sum(1 for node, parent, group in rows if parent is not None and (parent, group) not in nodes)
    children = defaultdict(list)
    for node, parent, group in rows:
        children[(parent, group)].append(node)
    reached, frontier = set(), [(node, group) for node, parent, group in rows if parent is None]
    while frontier:
        node, group = frontier.pop()
        if (node, group) in reached:
            continue
        reached.add((node, group))
        frontier.extend((child, group) for child in children[(node, group)])
    return missing + len(nodes - reached)


def groups_not_reconciled(totals: list[tuple[str, int]], details: list[tuple[str, int]]) -> int:
    """Groups whose row count in `details` differs from the total in `totals` (missing = zero)."""
    model = Counter()
    for group, count in totals:
        model[group] += count
    compared = Counter(group for group, _ in details)
    return sum(1 for group in set(model) | set(compared) if model[group] != compared[group])


def whole_not_reconciled(totals: list[tuple[str, int]], details: list[tuple[str, int]]) -> int:
    """Without a group column: 1 when the totals' sum differs from the details' row count."""
    return groups_not_reconciled([("", n) for _, n in totals], [("", x) for _, x in details])


def not_one_row(rows: list[tuple]) -> int:
    return 0 if len(rows) == 1 else 1


def overdue(rows: list[tuple[datetime]], now: datetime) -> int:
    """Rows whose due time is more than the project's grace (dbt var refresh_grace_hours) behind `now`."""
    grace = timedelta(hours=dbt_vars()["refresh_grace_hours"])
    return sum(1 for (due,) in rows if due < now - grace)


# --- the rows ----------------------------------------------------------------------------------

KEYS_GOOD = [("br-a",), ("br-b",), ("br-c",)]
KEYS_BAD = [("br-a",), ("br-b",), ("br-b",), (None,), ("br-c",), ("br-c",), ("br-c",)]
PAIRS_GOOD = [("p1", "2026-11-01"), ("p1", "2026-11-02"), ("p2", "2026-11-01")]
PAIRS_BAD = [("p1", "2026-11-01"), ("p1", "2026-11-01"), ("p2", None), ("p2", "2026-11-02")]
DEFAULTS_GOOD = [("p1", True), ("p1", False), ("p2", True)]
DEFAULTS_BAD = [("p1", True), ("p1", True), ("p2", False), ("p2", False), ("p3", True)]
TREE_GOOD = [
    ("r1", None, "p1"),
    ("c1", "r1", "p1"),
    ("g1", "c1", "p1"),
    ("r2", None, "p2"),
    ("c2", "r2", "p2"),
]
TREE_BAD = [
    ("r1", None, "p1"),
    ("c1", "r1", "p1"),
    ("x", "y", "p1"),
    ("y", "x", "p1"),  # a cycle: never reached from a root
    ("orphan", "gone", "p1"),
    ("below-orphan", "orphan", "p1"),  # a parent that does not exist
    ("r2", None, "p2"),
    ("stray", "r1", "p2"),  # a parent in another project
]
TOTALS_GOOD = [("aws-us-east-2", 2), ("aws-eu-central-1", 1)]
DETAILS_GOOD = [("aws-us-east-2", 1), ("aws-us-east-2", 2), ("aws-eu-central-1", 3)]
TOTALS_BAD = [("aws-us-east-2", 3), ("aws-eu-central-1", 1), ("azure-eastus2", 2)]
DETAILS_BAD = [("aws-us-east-2", 1), ("aws-us-east-2", 2), ("aws-eu-central-1", 3), ("aws-ap-southeast-1", 4)]

NOW = datetime.now(UTC).replace(tzinfo=None, microsecond=0)  # UTC without a zone, as the marts hold it
DUE_GOOD = [(NOW + timedelta(days=3),), (NOW - timedelta(hours=2),)]  # due soon, or due within the grace
DUE_BAD = [(NOW + timedelta(days=3),), (NOW - timedelta(hours=30),), (NOW - timedelta(days=9),)]

MODELS = {
    "keys_good": (["branch_id"], KEYS_GOOD),
    "keys_bad": (["branch_id"], KEYS_BAD),
    "pairs_good": (["project_id", "consumption_date"], PAIRS_GOOD),
    "pairs_bad": (["project_id", "consumption_date"], PAIRS_BAD),
    "defaults_good": (["project_id", "is_default"], DEFAULTS_GOOD),
    "defaults_bad": (["project_id", "is_default"], DEFAULTS_BAD),
    "tree_good": (["branch_id", "parent_branch_id", "project_id"], TREE_GOOD),
    "tree_bad": (["branch_id", "parent_branch_id", "project_id"], TREE_BAD),
    "single_good": (["branch_id"], KEYS_GOOD[:1]),
    "single_bad": (["branch_id"], KEYS_GOOD),
    "totals_good": (["region_id", "branch_count"], TOTALS_GOOD),
    "details_good": (["region_id", "logical_size_bytes"], DETAILS_GOOD),
    "totals_bad": (["region_id", "branch_count"], TOTALS_BAD),
    "details_bad": (["region_id", "logical_size_bytes"], DETAILS_BAD),
    "constrained": (["branch_id", "region_id"], [("br-a", "aws-us-east-2"), ("br-b", None)]),
    "due_good": (["refresh_due_at"], DUE_GOOD),
    "due_bad": (["refresh_due_at"], DUE_BAD),
}

EXPECTED = {
    "primary_key_good": key_violations(KEYS_GOOD),
    "primary_key_bad": key_violations(KEYS_BAD),
    "composite_key_good": key_violations(PAIRS_GOOD),
    "composite_key_bad": key_violations(PAIRS_BAD),
    "one_default_good": groups_without_exactly_one(DEFAULTS_GOOD),
    "one_default_bad": groups_without_exactly_one(DEFAULTS_BAD),
    "forest_good": forest_violations(TREE_GOOD),
    "forest_bad": forest_violations(TREE_BAD),
    "reconciles_good": groups_not_reconciled(TOTALS_GOOD, DETAILS_GOOD),
    "reconciles_bad": groups_not_reconciled(TOTALS_BAD, DETAILS_BAD),
    "reconciles_whole_good": whole_not_reconciled(TOTALS_GOOD, DETAILS_GOOD),
    "reconciles_whole_bad": whole_not_reconciled(TOTALS_BAD, DETAILS_BAD),
    "one_row_good": not_one_row(MODELS["single_good"][1]),
    "one_row_bad": not_one_row(MODELS["single_bad"][1]),
    "overdue_good": overdue(DUE_GOOD, NOW),
    "overdue_bad": overdue(DUE_BAD, NOW),
}
# Tests that warn rather than fail: rows past their refresh are still the last the API returned.
WARNINGS = {"overdue_good", "overdue_bad"}


def _schema() -> dict:
    def model(name: str, columns=None, tests=None) -> dict:
        entry: dict = {"name": name}
        if columns:
            entry["columns"] = columns
        if tests:
            entry["data_tests"] = tests
        return entry

    def named(test: str, name: str, **arguments) -> dict:
        return {test: {"name": name, "arguments": arguments} if arguments else {"name": name}}

    models = []
    for kind in ("good", "bad"):
        models += [
            model(
                f"keys_{kind}",
                columns=[{"name": "branch_id", "data_tests": [named("primary_key", f"primary_key_{kind}")]}],
            ),
            model(
                f"pairs_{kind}",
                tests=[
                    named("primary_key", f"composite_key_{kind}", columns=["project_id", "consumption_date"])
                ],
            ),
            model(
                f"defaults_{kind}",
                columns=[
                    {
                        "name": "project_id",
                        "data_tests": [
                            named("exactly_one_per_group", f"one_default_{kind}", condition="is_default")
                        ],
                    }
                ],
            ),
            model(
                f"tree_{kind}",
                tests=[
                    named(
                        "is_acyclic_tree",
                        f"forest_{kind}",
                        column_name="branch_id",
                        parent_column="parent_branch_id",
                        group_column="project_id",
                    )
                ],
            ),
            model(
                f"totals_{kind}",
                tests=[
                    named(
                        "reconciles_with",
                        f"reconciles_{kind}",
                        to=f"ref('details_{kind}')",
                        group_column="region_id",
                        measures={"branch_count": "count(*)"},
                    ),
                    named(
                        "reconciles_with",
                        f"reconciles_whole_{kind}",
                        to=f"ref('details_{kind}')",
                        measures={"branch_count": "count(*)"},
                    ),
                ],
            ),
            model(f"single_{kind}", tests=[named("one_row", f"one_row_{kind}")]),
            model(f"details_{kind}"),
            model(
                f"due_{kind}",
                columns=[
                    {
                        "name": "refresh_due_at",
                        "data_tests": [
                            {"not_overdue": {"name": f"overdue_{kind}", "config": {"severity": "warn"}}}
                        ],
                    }
                ],
            ),
        ]
    # a contracted table with a not_null constraint, as the marts declare: NULL never lands
    models.append(
        {
            "name": "constrained",
            "config": {"materialized": "table", "contract": {"enforced": True}},
            "columns": [
                {"name": "branch_id", "data_type": "varchar"},
                {"name": "region_id", "data_type": "varchar", "constraints": [{"type": "not_null"}]},
            ],
        }
    )
    return {"version": 2, "models": models}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, dict]:
    project = tmp_path_factory.mktemp("generic_tests_project")
    (project / "dbt_project.yml").write_text(
        yaml.safe_dump(
            {
                "name": "generic_tests",
                "version": "1.0.0",
                "config-version": 2,
                "profile": "generic_tests",
                "models": {"generic_tests": {"+materialized": "view"}},
                "vars": {"refresh_grace_hours": dbt_vars()["refresh_grace_hours"]},  # not_overdue's default
                # the project's macros are called in its namespace (adapter.dispatch(..., 'neon_elt'))
                "dispatch": [{"macro_namespace": "neon_elt", "search_order": ["generic_tests"]}],
            }
        )
    )
    (project / "profiles.yml").write_text(
        yaml.safe_dump(
            {
                "generic_tests": {
                    "target": "duckdb",
                    "outputs": {
                        "duckdb": {
                            "type": "duckdb",
                            "path": str(project / "generic_tests.duckdb"),
                            "threads": 4,
                        }
                    },
                }
            }
        )
    )
    shutil.copytree(GENERIC_TESTS, project / "tests" / "generic")
    shutil.copytree(MACROS, project / "macros")
    (project / "models").mkdir()
    for name, (columns, rows) in MODELS.items():
        (project / "models" / f"{name}.sql").write_text(_model_sql(columns, rows))
    (project / "models" / "_models.yml").write_text(yaml.safe_dump(_schema(), sort_keys=False))
    target = project / "target"
    completed = subprocess.run(
        [
            str(Path(sys.executable).with_name("dbt")),
            "build",
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project),
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DBT_TARGET_PATH": str(target), "DBT_LOG_PATH": str(project / "logs")},
    )
    run_results = target / "run_results.json"
    assert run_results.exists(), completed.stdout + completed.stderr
    assert completed.returncode == 1, "broken data must fail the build\n" + completed.stdout
    by_name = {}
    for result in json.loads(run_results.read_text())["results"]:
        by_name[result["unique_id"].split(".")[2]] = result
    return by_name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_generic_test_reports_exactly_the_broken_rows(results, name):
    expected = EXPECTED[name]
    assert (expected > 0) == name.endswith("_bad"), "the fixture: bad rows must break the rule, good ones not"
    result = results[name]
    failing = "warn" if name in WARNINGS else "fail"
    assert result["status"] == (failing if expected else "pass"), result["message"]
    assert result["failures"] == expected


def test_a_mart_s_not_null_constraint_stops_the_table_before_it_lands(results):
    result = results["constrained"]
    assert result["status"] == "error"
    assert "not null" in result["message"].lower()
