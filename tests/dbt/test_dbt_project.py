"""Structural rules of the dbt project, checked on the manifest of `dbt parse`.

These are the rules of dbt Labs' dbt-project-evaluator that matter here (it cannot be installed
offline): every model and column documented, every model tested, sources with freshness, only
staging reads sources, marts contracted, naming and folder conventions. Column lists are compared
with the warehouse itself, so a YAML file that forgets a column (or keeps a dropped one) fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from expected import query
from neon_elt import marimo_apps, marts_summary, report, views
from neon_elt.config import DBT_PROJECT_DIR
from neon_elt.run import dbt
from neon_elt.targets import DuckDBBuild
from spec import spec

PROJECT = "neon_elt"
PARTIAL_PARSE = "partial_parse.msgpack"  # dbt's file in its target folder
LAYERS = {
    "staging": ("models/staging/neon/", "stg_neon__", "staging", "_neon__models.yml"),
    "intermediate": ("models/intermediate/", "int_", "staging", "_intermediate__models.yml"),
    "marts": ("models/marts/", "", "marts", "_marts__models.yml"),
}
# dlt's bookkeeping tables and the runner's origin marker are not Neon data.
NOT_SOURCES = {"_dlt_loads", "_dlt_pipeline_state", "_dlt_version", "_neon_elt_origin"}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory, request) -> dict:
    """The project's manifest, from `dbt parse` started as the runner starts dbt (the rules need
    no warehouse), into a target folder of its own. dbt starts from the project as the last test
    run parsed it (its partial parse, kept in pytest's cache) and parses again only what changed:
    5 s of CPU instead of 10 from the second run on."""
    target = tmp_path_factory.mktemp("dbt-parse")
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    saved = cache.mkdir("dbt-parse") / PARTIAL_PARSE if cache else None
    if saved and saved.exists():  # copied in, not read through DBT_PARTIAL_PARSE_FILE_PATH: dbt
        shutil.copyfile(saved, target / PARTIAL_PARSE)  # writes the file only when the parse changed
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("DBT_PARTIAL_PARSE_FILE_PATH", raising=False)  # the session's demo build's
        dbt(["parse"], DuckDBBuild(target / "unused.duckdb"), target_path=str(target))
    if saved:  # replaced whole: another test run may be reading it
        fresh = saved.with_name(f"{PARTIAL_PARSE}.{os.getpid()}")
        shutil.copyfile(target / PARTIAL_PARSE, fresh)
        os.replace(fresh, saved)
    return json.loads((target / "manifest.json").read_text())


@pytest.fixture(scope="module")
def models(manifest) -> dict[str, dict]:
    return {
        node["name"]: node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["package_name"] == PROJECT
    }


@pytest.fixture(scope="module")
def data_tests(manifest) -> list[dict]:
    return [node for node in manifest["nodes"].values() if node["resource_type"] == "test"]


@pytest.fixture(scope="module")
def warehouse_columns(demo_warehouse) -> dict[tuple[str, str], list[str]]:
    """(schema, relation) -> its column names, as built."""
    columns = defaultdict(list)
    for schema, table, column in query(
        demo_warehouse,
        "select table_schema, table_name, column_name from information_schema.columns "
        "order by table_schema, table_name, ordinal_position",
    ):
        columns[(schema, table)].append(column)
    return columns


def layer_of(model: dict) -> str:
    for layer, (folder, *_rest) in LAYERS.items():
        if model["original_file_path"].startswith(folder):
            return layer
    raise AssertionError(f"{model['name']} lives outside the three layers: {model['original_file_path']}")


def attached_tests(data_tests: list[dict], model: dict) -> list[dict]:
    return [t for t in data_tests if t.get("attached_node") == model["unique_id"]]


def test_models_live_in_their_layer_with_the_layer_s_name_schema_and_materialization(models):
    assert models
    for name, model in models.items():
        folder, prefix, schema, yaml_file = LAYERS[layer_of(model)]
        assert name.startswith(prefix), f"{name} in {folder} should start with {prefix!r}"
        assert model["schema"] == schema, f"{name} builds into {model['schema']}, not {schema}"
        assert model["patch_path"] == f"{PROJECT}://{folder}{yaml_file}", (
            f"{name} is described in {model['patch_path']}, not in the folder's {yaml_file}"
        )
        if layer_of(model) == "marts":
            assert not name.startswith(("stg_", "int_")), name
        # staging views are cheap renames; intermediate and marts are read many times: tables
        expected = "view" if layer_of(model) == "staging" else "table"
        assert model["config"]["materialized"] == expected, f"{name} should be a {expected}"


@pytest.mark.slow  # compares with the columns of a built warehouse
def test_every_model_and_every_column_is_described(models, warehouse_columns):
    for name, model in models.items():
        assert model["description"].strip(), f"{name} has no description"
        built = warehouse_columns[(model["schema"], model["alias"])]
        assert built, f"{name} is not in the warehouse"
        documented = list(model["columns"])
        assert sorted(documented) == sorted(built), (
            f"{name}: YAML columns differ from the built ones; "
            f"missing {sorted(set(built) - set(documented))}, stale {sorted(set(documented) - set(built))}"
        )
        undescribed = [c for c, spec in model["columns"].items() if not spec["description"].strip()]
        assert not undescribed, f"{name}: columns without a description: {undescribed}"


def test_every_mart_states_its_grain(models, data_tests):
    """`One row per …`; a mart of one row in all says so, and exactly such a mart is tested
    one_row (a grain the description states and no test holds would be a claim)."""
    for name, model in models.items():
        if layer_of(model) != "marts":
            continue
        description = model["description"].lstrip()
        assert description.startswith(("One row per", "One row in all")), (
            f"mart {name} should start its description with its grain (`One row per …`)"
        )
        one_row = any(t["test_metadata"]["name"] == "one_row" for t in attached_tests(data_tests, model))
        assert one_row == description.startswith("One row in all"), (
            f"mart {name}: `One row in all` and the one_row test go together"
        )


def test_marts_have_an_enforced_contract_with_every_data_type(models):
    marts = {n: m for n, m in models.items() if layer_of(m) == "marts"}
    assert {
        "project_branch_inventory",
        "regional_footprint",
        "projects",
        "branch_history",
        "daily_consumption",
        "stale_branches",
        "access_review",
        "project_security",
    } <= set(marts)
    for name, model in marts.items():
        assert model["contract"]["enforced"], f"mart {name} has no enforced contract"
        untyped = [c for c, spec in model["columns"].items() if not spec.get("data_type")]
        assert not untyped, f"{name}: columns without data_type: {untyped}"


@pytest.mark.slow  # compares with the columns of a built warehouse
def test_every_source_table_and_column_is_described_and_declared(manifest, warehouse_columns):
    sources = {s["name"]: s for s in manifest["sources"].values() if s["source_name"] == "neon"}
    raw_tables = {t for (schema, t) in warehouse_columns if schema == "neon_api_data"} - NOT_SOURCES
    assert set(sources) == raw_tables, "every raw table is declared as a source, and only those"
    for name, source in sources.items():
        assert source["description"].strip(), f"source table {name} has no description"
        built = warehouse_columns[("neon_api_data", name)]
        assert sorted(source["columns"]) == sorted(built), (
            f"source {name}: missing {sorted(set(built) - set(source['columns']))}, "
            f"stale {sorted(set(source['columns']) - set(built))}"
        )
        undescribed = [c for c, spec in source["columns"].items() if not spec["description"].strip()]
        assert not undescribed, f"source {name}: columns without a description: {undescribed}"


def test_every_source_has_freshness_on_the_load_time(manifest):
    for source in manifest["sources"].values():
        assert source["loaded_at_field"], f"{source['name']} has no loaded_at_field"
        freshness = source["freshness"]
        assert freshness["warn_after"]["count"] and freshness["warn_after"]["period"], source["name"]
        assert freshness["error_after"]["count"] and freshness["error_after"]["period"], source["name"]


def test_only_staging_reads_sources_and_staging_reads_nothing_else(models):
    """A staging model reads exactly one raw table: itself, or through the one staging model that
    names its columns (the latest readings are their readings model, reduced to the last row)."""
    for name, model in models.items():
        parents = model["depends_on"]["nodes"]
        reads_source = any(p.startswith("source.") for p in parents)
        if layer_of(model) == "staging":
            assert len(parents) == 1, f"staging model {name} should read exactly its raw table: {parents}"
            (parent,) = parents
            if parent.startswith("model."):
                base = models[parent.rsplit(".", 1)[-1]]
                assert layer_of(base) == "staging" and base["depends_on"]["nodes"][0].startswith("source."), (
                    f"staging model {name} reads {parent}, which is not a staging model of a raw table"
                )
            else:
                assert parent.startswith("source."), f"staging model {name} reads {parent}"
        else:
            assert not reads_source, f"{name} reads a source directly; go through staging"


def test_every_model_has_at_least_one_test(models, data_tests, manifest):
    unit_tested = {u["depends_on"]["nodes"][0] for u in manifest["unit_tests"].values()}
    for name, model in models.items():
        assert attached_tests(data_tests, model) or model["unique_id"] in unit_tested, f"{name} is untested"


def test_every_model_has_a_key_tested_unique_and_not_null(models, data_tests):
    """Every model's key, in every layer, is tested unique and not null by the project's
    primary_key test: on the key column, or on the model with `columns` for a key of several. A
    one-row model's key is no column at all: its test is one_row."""
    for name, model in models.items():
        tests = attached_tests(data_tests, model)
        keys = [t for t in tests if t["test_metadata"]["name"] == "primary_key"]
        one_row = [t for t in tests if t["test_metadata"]["name"] == "one_row"]
        assert keys or one_row, f"{name} has no key tested unique and not null (primary_key, or one_row)"
        assert not (keys and one_row), f"{name}: a model of one row has no key column"
        for key in keys:
            columns = key["test_metadata"]["kwargs"].get("columns") or [key["column_name"]]
            assert all(columns), f"{name}: primary_key names no column"


def test_every_mart_is_tied_to_its_parents_by_relationships(models, data_tests):
    """By relationships on its keys; a one-row mart, which has none, by reconciling its totals."""
    for name, model in models.items():
        if layer_of(model) != "marts":
            continue
        tests = {t["test_metadata"]["name"] for t in attached_tests(data_tests, model)}
        tie = "reconciles_with" if "one_row" in tests else "relationships"
        assert tie in tests, f"mart {name} has no {tie} test"


def test_custom_generic_tests_guard_the_marts(data_tests):
    applied = {(t["test_metadata"]["name"], t["attached_node"].split(".")[-1]) for t in data_tests}
    assert ("exactly_one_per_group", "project_branch_inventory") in applied  # one default branch
    assert ("is_acyclic_tree", "project_branch_inventory") in applied  # lineage: no cycles, parents exist
    assert ("reconciles_with", "regional_footprint") in applied  # totals match the inventory
    assert ("one_row", "estate") in applied  # the headline: one row, also without projects
    for test in data_tests:
        if test["test_metadata"]["name"] in {
            "exactly_one_per_group",
            "is_acyclic_tree",
            "reconciles_with",
            "primary_key",
            "one_row",
        }:
            assert test["test_metadata"]["namespace"] is None, "a project test, not a package's"


def _accepted_values(data_tests, model: str, column: str) -> dict:
    found = [
        t
        for t in data_tests
        if t["test_metadata"]["name"] == "accepted_values"
        and t["attached_node"] == f"model.{PROJECT}.{model}"
        and t["column_name"] == column
    ]
    assert len(found) == 1, f"{model}.{column} should have one accepted_values test"
    return found[0]


def test_enumerations_come_from_neon_s_spec_and_none_blocks_the_build(data_tests):
    """Neon grows its enumerations (the live spec of 2026-08 added operation actions and a
    PostgreSQL version): a value a test does not know warns, and the run names it (run.py)."""
    schemas = spec()["components"]["schemas"]
    cases = {
        # (model, column): (spec enum, or None when the spec only describes the values; severity)
        ("stg_neon__endpoints", "endpoint_type"): (schemas["EndpointType"]["enum"], "WARN"),
        ("stg_neon__project_members", "grant_source"): (schemas["ProjectMemberGrantSource"]["enum"], "WARN"),
        ("stg_neon__project_members", "effective_project_permission"): (
            schemas["ProjectPermissionLevel"]["enum"],
            "WARN",
        ),
        ("stg_neon__project_members", "org_role"): (schemas["ProjectMemberOrgRole"]["enum"], "WARN"),
        ("stg_neon__deleted_branches", "deletion_method"): (
            schemas["BranchRecoveryInfo"]["properties"]["deletion_method"]["enum"],
            "WARN",
        ),
        ("stg_neon__endpoint_latest_readings", "endpoint_state"): (schemas["EndpointState"]["enum"], "WARN"),
        ("stg_neon__operations", "operation_status"): (schemas["OperationStatus"]["enum"], "WARN"),
        ("stg_neon__operations", "operation_action"): (schemas["OperationAction"]["enum"], "WARN"),
        ("stg_neon__branches", "branch_state"): (None, "WARN"),
        ("stg_neon__organization_members", "member_role"): (schemas["MemberRole"]["enum"], "WARN"),
        ("stg_neon__projects", "audit_log_level"): (schemas["ProjectAuditLogLevel"]["enum"], "WARN"),
    }
    for (model, column), (enum, severity) in cases.items():
        test = _accepted_values(data_tests, model, column)
        values = test["test_metadata"]["kwargs"]["values"]
        if enum is None:  # BranchState: the values are named in the description
            description = schemas["BranchState"]["description"]
            assert all(f"'{v}'" in description for v in values), values
        else:
            assert sorted(values) == sorted(enum), f"{model}.{column} differs from Neon's spec"
        assert test["config"]["severity"].upper() == severity, f"{model}.{column}"


def test_unit_tests_cover_the_tricky_logic(manifest):
    covered = defaultdict(list)
    for unit in manifest["unit_tests"].values():
        covered[unit["model"]].append(unit["name"])
        assert unit["description"].strip(), f"unit test {unit['name']} has no description"
        # dbt names a relation after the unit test: PostgreSQL refuses a name over 63 bytes
        assert len(unit["name"].encode()) <= 63, f"unit test {unit['name']}: name too long for PostgreSQL"
    assert sum(len(names) for names in covered.values()) >= 5
    for model in (
        "int_branches_lineage",
        "int_branches_rollup",
        "regional_footprint",
        "stg_neon__branches",
        "int_consumption_pivoted_to_project_days",
        "access_review",
        "project_security",
    ):
        assert covered[model], f"{model} has no unit test"


def test_exposures_name_what_analysts_use_and_depend_on_marts(manifest, models):
    exposures = manifest["exposures"].values()
    assert len(exposures) >= 3
    marts = {m["unique_id"] for m in models.values() if layer_of(m) == "marts"}
    for exposure in exposures:
        assert exposure["description"].strip() and exposure["owner"]
        assert exposure["depends_on"]["nodes"] and set(exposure["depends_on"]["nodes"]) <= marts, exposure[
            "name"
        ]
    assert any(e["depends_on"]["nodes"] == [f"model.{PROJECT}.stale_branches"] for e in exposures)


MARTS = {path.stem for path in (DBT_PROJECT_DIR / "models" / "marts").glob("*.sql")}
REPORT_CODE = sorted((Path(report.__file__).parent).glob("*.py"))


def marts_named(source: str) -> set[str]:
    """The marts a module's code names: in its own text, or in the queries of neon_elt.views it
    uses (the report's and the notebook's shared SQL)."""
    shared = [
        query
        for name, query in vars(views).items()
        if name.isupper() and isinstance(query, str) and re.search(rf"\b{name}\b", source)
    ]
    return set(re.findall(r"\bmarts\.(\w+)", "\n".join([source, *shared]))) & MARTS


@pytest.mark.parametrize(
    "name, code",
    [
        ("estate_notebook", [marimo_apps.NOTEBOOK]),
        ("marts_summary", [Path(marts_summary.__file__)]),
        ("estate_report", REPORT_CODE),
    ],
)
def test_an_exposure_depends_on_every_mart_its_code_names(name, code):
    """`dbt ls --select +exposure:<name>` lists what a change would touch only if the exposure
    depends on every mart the notebook, the printed summary or the report reads or points its
    reader at."""
    exposures = yaml.safe_load((DBT_PROJECT_DIR / "models" / "marts" / "_exposures.yml").read_text())
    exposure = next(e for e in exposures["exposures"] if e["name"] == name)
    if name == "estate_notebook":
        assert DBT_PROJECT_DIR.parent / exposure["url"].removeprefix("file://") == marimo_apps.NOTEBOOK
    depends_on = {re.fullmatch(r"ref\('(\w+)'\)", ref).group(1) for ref in exposure["depends_on"]}
    assert depends_on == marts_named("\n".join(path.read_text() for path in code))


def test_the_docs_have_an_overview_page(manifest):
    overview = manifest["docs"].get(f"doc.{PROJECT}.__overview__")
    assert overview and "staging" in overview["block_contents"] and "marts" in overview["block_contents"]


def listed_marts(text: str) -> list[str]:
    """The names in the first column of a page's table of marts (its header: `| mart … | one row per |`)."""
    header = re.search(r"^\| mart\b.*\| one row per \|", text, re.M)
    table = text[header.start() :].split("\n\n", 1)[0]
    return re.findall(r"^\| `(\w+)` \|", table, re.M)


def test_the_readme_and_dbt_docs_overview_list_every_mart(models, manifest):
    """A newcomer's two maps of the marts, the README's table and the front page of `make docs`:
    each names every mart once, and nothing that is not one."""
    marts = sorted(name for name, model in models.items() if layer_of(model) == "marts")
    readme = (DBT_PROJECT_DIR.parent / "README.md").read_text()
    overview = manifest["docs"][f"doc.{PROJECT}.__overview__"]["block_contents"]
    for page, text in (("README.md", readme), ("the docs overview", overview)):
        listed = listed_marts(text)
        assert sorted(listed) == marts, f"{page}: {sorted(set(marts) ^ set(listed))}"


def test_persist_docs_is_on_for_every_model(models):
    for name, model in models.items():
        assert model["config"]["persist_docs"] == {"relation": True, "columns": True}, name
