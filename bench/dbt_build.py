"""Benchmark 4: `dbt build` on the extracted warehouse against a trivial dbt project of the same
shape (our count of models, materializations, schemas and data tests), and an empty one."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bench.rows import Row, fmt_s

# dbt's own generic tests, as the same-shape project writes them (on a column holding 1); ours that
# are not dbt's (primary_key and the like, one query each) become not_null there.
TRIVIAL_TESTS = {
    "not_null": "not_null",
    "unique": "unique",
    "accepted_values": {"accepted_values": {"arguments": {"values": [1], "quote": False}}},
    "relationships": {"relationships": {"arguments": {"to": "ref('m0')", "field": "c0"}}},
}


def write_same_shape_project(manifest: Path, folder: Path) -> str:
    """A trivial dbt project shaped like ours, from our manifest: as many one-row models (`select
    1`) with the same materializations and schemas, and as many data tests, each one of dbt's
    generic tests on those models. Returns what it holds, for the row's note."""
    nodes = json.loads(manifest.read_text())["nodes"].values()
    models = Counter(
        (n["config"]["materialized"], n["schema"]) for n in nodes if n["resource_type"] == "model"
    )
    kinds = Counter(
        (n.get("test_metadata") or {}).get("name", "singular") for n in nodes if n["resource_type"] == "test"
    )
    tests = sorted(kind if kind in TRIVIAL_TESTS else "not_null" for kind in kinds.elements())
    shapes = list(models.elements())
    # test i goes on model i mod n, column c(i div n): no two alike on one column
    columns = max(1, -(-len(tests) // len(shapes)))
    (folder / "models").mkdir(parents=True)
    (folder / "macros").mkdir()
    select = "select " + ", ".join(f"1 as c{c}" for c in range(columns))
    for i, (materialized, schema) in enumerate(shapes):
        config = f"{{{{ config(materialized='{materialized}', schema='{schema}') }}}}"
        (folder / "models" / f"m{i}.sql").write_text(f"{config}\n{select}\n")
    yml = {
        "version": 2,
        "models": [
            {
                "name": f"m{m}",
                "columns": [
                    {"name": f"c{c}", "data_tests": [TRIVIAL_TESTS[tests[c * len(shapes) + m]]]}
                    for c in range(columns)
                    if c * len(shapes) + m < len(tests)
                ],
            }
            for m in range(len(shapes))
        ],
    }
    (folder / "models" / "tests.yml").write_text(json.dumps(yml, indent=1))  # JSON is YAML
    # our schema names as is (staging, marts), as dbt_project/macros/generate_schema_name.sql
    (folder / "macros" / "generate_schema_name.sql").write_text(
        "{% macro generate_schema_name(custom_schema_name, node) %}"
        "{{ (custom_schema_name or target.schema) | trim }}{% endmacro %}\n"
    )
    (folder / "dbt_project.yml").write_text(
        "name: shaped\nversion: '1.0.0'\nconfig-version: 2\nprofile: shaped\n"
    )
    # threads 4, as dbt_project/profiles.yml; a fresh database file each turn, as ours
    (folder / "profiles.yml").write_text(
        "shaped:\n  target: duckdb\n  outputs:\n    duckdb:\n      type: duckdb\n"
        "      path: \"{{ env_var('BENCH_DUCKDB') }}\"\n      threads: 4\n"
    )
    model_text = ", ".join(f"{count} {m} in {s}" for (m, s), count in sorted(models.items()))
    others = ", ".join(sorted(kind for kind in kinds if kind not in TRIVIAL_TESTS))
    test_text = ", ".join(f"{count} {kind}" for kind, count in sorted(Counter(tests).items()))
    return (
        f"{len(shapes)} one-row `select 1` models ({model_text}) and {len(tests)} data tests, each one of "
        f"dbt's generic tests on them ({test_text}: ours of those kinds as such"
        f"{f', {others} as not_null' if others else ''}); "
        "no sources, contracts, docs or unit tests"
    )


def _dbt_build_seconds(exe: Path, project: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [str(exe), "build", "--quiet", "--project-dir", str(project), "--profiles-dir", str(project)],
        check=True,
        cwd=project,
        env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **env},
    )
    return time.perf_counter() - started


def bench_dbt(workdir: Path, warehouse: Path, rounds: int = 3) -> Row:
    """Our build, a same-shape trivial project's (the anchor) and an empty project's, in turns,
    each from a fresh target folder (a full parse) and on a fresh database (ours a fresh copy of
    the extracted warehouse); the medians are compared, since single runs on a shared 2-core
    machine vary by 10-20%. dbt pays a fixed cost per node, so the anchor has our nodes' count
    and kinds; the empty project shows dbt's start-up alone."""
    import duckdb
    from neon_elt.run import dbt
    from neon_elt.targets import DuckDBBuild

    dbt(["parse", "--quiet"], DuckDBBuild(warehouse), target_path=str(workdir / "dbt-parse"))
    shaped = workdir / "shaped_dbt"
    anchor_holds = write_same_shape_project(workdir / "dbt-parse" / "manifest.json", shaped)
    empty = workdir / "empty_dbt"
    empty.mkdir()
    (empty / "dbt_project.yml").write_text(
        "name: empty\nversion: '1.0.0'\nconfig-version: 2\nprofile: empty\n"
    )
    (empty / "profiles.yml").write_text(
        "empty:\n  target: duckdb\n  outputs:\n    duckdb:\n      type: duckdb\n"
        f"      path: {workdir / 'empty.duckdb'}\n"
    )
    dbt_exe = Path(sys.executable).with_name("dbt")
    ours: list[float] = []
    anchors: list[float] = []
    empties: list[float] = []
    for round_number in range(rounds):
        build_copy = workdir / f"dbt-round-{round_number}" / warehouse.name
        build_copy.parent.mkdir()
        shutil.copyfile(warehouse, build_copy)
        env_target = workdir / f"dbt-target-{round_number}"
        started = time.perf_counter()
        # as `make elt` runs it: models and data tests; unit tests belong to `make test`
        dbt(
            ["build", "--quiet", "--exclude-resource-type", "unit_test"],
            DuckDBBuild(build_copy),
            target_path=str(env_target),
        )
        ours.append(time.perf_counter() - started)
        anchors.append(
            _dbt_build_seconds(
                dbt_exe,
                shaped,
                {
                    "DBT_TARGET_PATH": str(workdir / f"shaped-target-{round_number}"),
                    "BENCH_DUCKDB": str(build_copy.parent / "shaped.duckdb"),
                },
            )
        )
        empties.append(
            _dbt_build_seconds(
                dbt_exe, empty, {"DBT_TARGET_PATH": str(workdir / f"empty-target-{round_number}")}
            )
        )
    build_seconds, anchor, floor = (statistics.median(x) for x in (ours, anchors, empties))
    ratio = build_seconds / anchor
    results = json.loads((env_target / "run_results.json").read_text())
    kinds = Counter(r["unique_id"].split(".")[0] for r in results["results"])
    connection = duckdb.connect(str(build_copy), read_only=True)
    try:
        consumption_rows = connection.execute("select count(*) from marts.daily_consumption").fetchone()[0]
    finally:
        connection.close()

    def turns(seconds: list[float]) -> str:
        return ", ".join(fmt_s(x) for x in seconds)

    return Row(
        "4. dbt build (models and data tests, as make elt runs it) on that warehouse",
        fmt_s(build_seconds),
        f"{fmt_s(anchor)} (same-shape trivial dbt project)",
        f"{ratio:.2f}x the anchor",
        "<= 2x the same-shape anchor",
        "met" if ratio <= 2 else "MISSED",
        f"medians of {rounds} turns each (ours {turns(ours)}; anchor {turns(anchors)}). The anchor: "
        f"{anchor_holds}; built as ours (`build --quiet`, 4 threads, dbt-duckdb, a fresh target folder "
        f"and database each turn). An empty dbt project, dbt's start-up alone, takes {fmt_s(floor)} "
        f"(median; {turns(empties)}); ours is {build_seconds / floor:.2f}x that. Of ours, "
        f"{results['elapsed_time']:.1f} s executing {kinds['model']} models and {kinds['test']} data tests "
        f"(daily_consumption alone writes {consumption_rows:,} rows)",
    )
