"""The two halves of the pipeline, run in a build of the target warehouse (targets.py).

`extract` runs the dlt pipeline `neon_api_pipeline` into the dataset `neon_api_data`;
`transform` runs `dbt build` (models and tests) over it. `elt` does both in one build, so with
DuckDB readers see either the previous warehouse or the new one, never a mix.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
from dlt.common.pipeline import LoadInfo
from dlt.common.runtime import run_context
from neon_api_source import CONSUMPTION_RESOURCES, neon_api_source
from neon_api_source.helpers import (
    NeonAPIError,
    NeonClient,
    NeonSetupError,
    RunStats,
    exception_chain,
    innermost,
    origin_of,
)

from . import config, memory
from .progress import Progress, summary
from .targets import DuckDBTarget, PostgresTarget
from .warehouse import FAULT_TEXTS

Build = Any  # targets.DuckDBBuild | targets.PostgresBuild

# Environment variables that carry secrets: never passed on to dbt.
SECRET_ENV = (
    "NEON_API_KEY",
    "SOURCES__NEON_API_SOURCE__API_KEY",
    "SOURCES__NEON_API_SOURCE__EMAIL_HASH_SALT",
)
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


class StepFailed(Exception):
    """A step failed; the message is the one-line cause for the user. `code`: the exit code, 1 (a
    failed run), or 2 when the API's answer says the settings are wrong (a rejected key)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


@dataclass
class ExtractResult:
    load_info: LoadInfo | None
    stats: RunStats
    table_rows: dict[str, int] = field(default_factory=dict)

    @property
    def load_id(self) -> str | None:
        ids = self.load_info.loads_ids if self.load_info else []
        return ids[-1] if ids else None


# dlt's settings for this pipeline, under its name: dlt reads `<pipeline>.<key>` before `<key>`, so
# they change no other pipeline in the process (a user's own, or dlt's dashboard).
PIPELINE_CONFIG = {
    # Arrow items (consumption) get dlt's load id like every other row; their row id (_dlt_id) the
    # source writes itself: dlt's normalize would rewrite every parquet file to add it (memory.py).
    "normalize.parquet_normalizer.add_dlt_load_id": True,
    "normalize.parquet_normalizer.add_dlt_id": False,
    # A consumption table's rows go to DuckDB in files of at most this many rows (memory.py).
    "data_writer.file_max_items": memory.LOAD_FILE_MAX_ROWS,
    # A load's files go once loaded: they hold every row (emails of the access review included),
    # and the warehouse is the one place rows may stay.
    "load.delete_completed_jobs": True,
}


def pipelines_dir(build: Build) -> Path:
    """dlt's folder for this pipeline's runs into one warehouse, under dlt's data folder
    (DLT_DATA_DIR, else ~/.dlt): `make demo` during a scheduled `make elt` into another
    warehouse, or two accounts' warehouses on one host, never touch each other's load packages.
    Only a run that holds the warehouse's lock (targets.py) writes in it."""
    digest = hashlib.sha256(build.identity.encode()).hexdigest()[:16]
    return Path(run_context.active().get_data_entity("neon-elt")) / digest


def make_pipeline(build: Build) -> dlt.Pipeline:
    """The dlt pipeline, with its local state reset so that the state (incremental cursors) always
    comes from the warehouse it loads into, never from a run whose warehouse was not published."""
    for key, value in PIPELINE_CONFIG.items():  # this pipeline's only, by dlt's pipeline section
        dlt.config[f"{config.PIPELINE_NAME}.{key}"] = value
    # The last run's local state goes before dlt opens the pipeline (this warehouse's folder, and
    # the caller holds its lock): opened with a destination, a state left by a run into the other
    # warehouse (make demo after TARGET=postgres) makes dlt log that the state's destination
    # differs. (Pipeline.drop() comes too late for that, and keeps the destination it was opened with.)
    folder = pipelines_dir(build)
    shutil.rmtree(folder / config.PIPELINE_NAME, ignore_errors=True)
    pipeline = dlt.pipeline(
        pipeline_name=config.PIPELINE_NAME,
        pipelines_dir=str(folder),
        destination=build.destination(),
        dataset_name=config.DATASET_NAME,
    )
    pipeline.sync_destination()  # state and schema as the warehouse has them (nothing on a first run)
    return pipeline


def extract(
    build: Build,
    client: NeonClient,
    *,
    consumption: bool = True,
    show_progress: bool = True,
    plan_only: bool = False,
    **source_options: Any,
) -> ExtractResult:
    """Load the Neon estate into the build: dlt's extract, normalize and load steps, run one by
    one so that the listings held during the extract are freed before the destination loads.
    `plan_only`: read the signals, decide what a run would re-read (`stats.plan`), load nothing.
    `source_options` go to the source (`full_refresh`, `full_refresh_days`, `run_at`)."""
    try:
        pipeline = make_pipeline(build)  # reads the warehouse: the disk can fail it already
        lost = recover_lost_tables(pipeline)
        if lost:
            source_options["full_refresh"] = True
            client.stats.note(f"full run: the warehouse lost {', '.join(lost)}")
        source = neon_api_source(
            client=client, consumption=consumption, plan_only=plan_only, **source_options
        )
        rows: dict[str, int] = {}
        if consumption and not plan_only:
            estate = source.estate
            parts = memory.consumption_loads([project.get("org_id") for project in estate.projects()])
            if len(parts) > 1:  # a large account's consumption first, a part at a time (memory.py)
                for part in parts:
                    estate.consumption_orgs = part
                    with Progress(client.stats, enabled=show_progress):
                        pipeline.extract(
                            source.with_resources(*CONSUMPTION_RESOURCES),
                            loader_file_format=build.loader_file_format,
                        )
                    _normalize_and_load(pipeline, build, rows)
                estate.consumption_orgs = []  # every organization's is loaded
            del estate
        with Progress(client.stats, enabled=show_progress):
            pipeline.extract(source, loader_file_format=build.loader_file_format)
        if plan_only:
            return ExtractResult(None, client.stats)
        del source
        load_info = _normalize_and_load(pipeline, build, rows)
    except Exception as exc:  # dlt wraps the cause in step exceptions
        interrupt = interrupt_in(exc)
        if interrupt is not None:  # Ctrl-C (or SIGTERM during dlt's load): an interrupt, not a failure
            raise interrupt from None
        setup = any(isinstance(e, NeonSetupError) for e in exception_chain(exc))
        raise StepFailed(f"extract failed: {root_cause(exc)}", code=2 if setup else 1) from exc
    tables = {t: n for t, n in rows.items() if not t.startswith("_dlt")}
    return ExtractResult(load_info, client.stats, tables)


def _normalize_and_load(pipeline: dlt.Pipeline, build: Build, rows: dict[str, int]) -> LoadInfo:
    """dlt's normalize and load of what was extracted; adds the rows of each table to `rows`."""
    memory.release_memory()
    counts = pipeline.normalize().row_counts
    memory.release_memory()
    for table, count in counts.items():
        rows[table] = rows.get(table, 0) + count
    workers = memory.load_workers(sum(counts.values()))
    return pipeline.load(workers=workers, credentials=build.load_credentials(workers))


def recover_lost_tables(pipeline: dlt.Pipeline) -> list[str]:
    """The raw tables the warehouse's schema names but the warehouse lost (a user's cleanup, a
    restore from an older backup). dlt would skip creating them, as the schema is stored already,
    and fail its load; so the stored schema's version is forgotten (in this run's build, whose
    failure publishes nothing) and dlt creates them again, and the run reads everything (a full
    run) so that they hold the whole estate."""
    if not pipeline.default_schema_name:  # a first run: nothing to lose
        return []
    schema = pipeline.default_schema
    with pipeline.destination_client() as client:
        found = dict(client.get_storage_tables(schema.data_table_names()))
        lost = sorted(name for name, columns in found.items() if not columns)
        if lost:
            with client.sql_client as sql:
                version = sql.make_qualified_table_name("_dlt_version")
                stored = schema.stored_version_hash.replace("'", "''")
                sql.execute_sql(f"delete from {version} where version_hash = '{stored}'")
    return lost


def interrupt_in(exc: BaseException) -> KeyboardInterrupt | None:
    """The interrupt in an exception chain, if any: dlt wraps a KeyboardInterrupt raised in its
    steps in its own step exception, and turns a signal during its load into
    SignalReceivedException (a KeyboardInterrupt with the signal's number)."""
    return next((e for e in exception_chain(exc) if isinstance(e, KeyboardInterrupt)), None)


def root_cause(exc: BaseException) -> str:
    """The most useful one-line message in an exception chain: ours if we raised it."""
    ours = next((e for e in exception_chain(exc) if isinstance(e, NeonAPIError)), None)
    if ours is not None:
        return str(ours)
    deepest = innermost(exc)
    text = str(deepest).strip().splitlines()
    return f"{type(deepest).__name__}: {text[0]}" if text else type(deepest).__name__


def dbt(args: Sequence[str], build: Build, *, target_path: str | None = None) -> None:
    """Run dbt on the project against the build, streaming its output. The API key never reaches
    dbt's environment; database credentials reach it as variables its profile reads."""
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    env.update(build.dbt_env())
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    if target_path:
        env["DBT_TARGET_PATH"] = target_path
    executable = Path(sys.executable).with_name("dbt")
    command = [
        str(executable),
        *args,
        "--project-dir",
        str(config.DBT_PROJECT_DIR),
        "--profiles-dir",
        str(config.DBT_PROJECT_DIR),
        "--target",
        build.dbt_target,
    ]
    # dbt's output goes on to ours line by line, read on the way for a fault of the machine (a full
    # disk, say), which the one-line message then names instead of pointing at dbt's output.
    env["PYTHONUNBUFFERED"] = "1"
    fault_line = None
    with subprocess.Popen(
        command, env=env, cwd=build.dbt_cwd, stdout=subprocess.PIPE, text=True, errors="replace"
    ) as process:
        assert process.stdout is not None
        try:
            for line in process.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                if fault_line is None and any(text in line for text in FAULT_TEXTS):
                    fault_line = " ".join(ANSI_ESCAPE.sub("", line).split())
        except KeyboardInterrupt:  # a signal to this process alone: stop dbt before waiting for it
            process.send_signal(signal.SIGINT)
            raise
    if process.returncode != 0:
        if fault_line:
            raise StepFailed(f"dbt {args[0]} failed (exit {process.returncode}): {fault_line}")
        raise StepFailed(f"dbt {args[0]} failed (exit {process.returncode}); see its output above")


def check_origin(target_name: str, previous: str | None, origin: str, remedy: str) -> None:
    """Refuse to load one account's data on top of another's (the demo's on top of a real
    account's, say): history tables would mix them for good."""
    if previous is not None and previous != origin:
        raise config.ConfigError(
            f"{target_name} holds data loaded from {previous}, and this run reads {origin}. {remedy}"
        )


def elt(
    target: DuckDBTarget | PostgresTarget | Path,
    client: NeonClient | None,
    *,
    do_extract: bool = True,
    do_transform: bool = True,
    consumption: bool = True,
    show_progress: bool = True,
    dbt_vars: dict[str, Any] | None = None,
    unit_tests: bool = False,
    plan_only: bool = False,
    **source_options: Any,
) -> ExtractResult | None:
    """Run the chosen steps in one build of the target (a DuckDB file path means that file).

    dbt's unit tests check the models' logic on fixed inputs, not the data, so scheduled runs
    leave them out, as dbt recommends for production; the test suite runs them (unit_tests=True).
    `plan_only` decides the extract's plan and publishes nothing; `source_options` go to the
    source (`full_refresh`, `full_refresh_days`, `run_at`)."""
    if isinstance(target, Path):
        target = DuckDBTarget(target)
    if plan_only:
        with target.build(publish=False) as build:
            return extract(build, client, show_progress=False, plan_only=True, **source_options)
    result = None
    with target.build() as build:
        if do_extract:
            assert client is not None
            origin = origin_of(client.base_url)
            previous = build.read_origin()
            if not build.isolated:  # loads land in place: refuse before loading anything
                check_origin(target.describe(), previous, origin, build.mixing_remedy)
            result = extract(
                build,
                client,
                consumption=consumption,
                show_progress=show_progress,
                **source_options,
            )
            # in a working copy, checked after the extract, so that a wrong URL or key is
            # reported as such first
            check_origin(target.describe(), previous, origin, build.mixing_remedy)
            build.record_origin(origin)
            print(result.load_info)
            print(summary(result.stats, result.load_id, result.table_rows))
        if do_transform:
            args = ["build"] + ([] if unit_tests else ["--exclude-resource-type", "unit_test"])
            dbt(args + (["--vars", json.dumps(dbt_vars)] if dbt_vars else []), build)
            for line in drift_warnings(build):
                print(line)
    return result


# What a warning names of the values a test found: this many, at most.
DRIFT_VALUES_SHOWN = 5


def drift_warnings(build: Any) -> list[str]:
    """One line per dbt test that warned in the build just run (run_results.json), naming the
    values it found: Neon grows its enumerations (an endpoint type, a region, an operation action, a
    PostgreSQL version), and such a value publishes the warehouse with a warning, not a failure."""
    results = (
        Path(os.environ.get("DBT_TARGET_PATH") or config.DBT_PROJECT_DIR / "target") / "run_results.json"
    )
    try:
        warned = [r for r in json.loads(results.read_text())["results"] if r.get("status") == "warn"]
    except (OSError, ValueError, KeyError):
        return []
    lines = []
    for result in warned:
        name = result["unique_id"].split(".")[2]
        try:
            rows = build.rows(
                f"select * from ({result['compiled_code']}) as found limit {DRIFT_VALUES_SHOWN}"
            )
        except Exception:  # a test whose query cannot be read back: its name alone
            rows = []
        values = ", ".join(str(next(iter(row.values()))) for row in rows)
        lines.append(f"warning: dbt test {name} found values it does not know: {values or 'see above'}")
    return lines
