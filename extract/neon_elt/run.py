"""The two halves of the pipeline, run in a build of the target warehouse (targets.py).

`extract` runs the dlt pipeline `neon_api_pipeline` into the dataset `neon_api_data`;
`transform` runs `dbt build` (models and tests) over it. `elt` does both in one build, so with
DuckDB readers see either the previous warehouse or the new one, never a mix.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
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

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


class StepFailed(Exception):
    """A step failed; the message is the one-line cause for the user. `code`: the exit code, 1 (a
    failed run), or 2 when the API's answer says the settings are wrong (a rejected key)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


class RunDeadline(KeyboardInterrupt):
    """run_deadline_seconds passed after the API's requests: in dlt's normalize or load, or in
    dbt (a database that hangs). Raised by a timer in the main thread as Ctrl-C's interrupt is, so
    that the run ends the same way (dbt stopped, the working copy removed); the runner reports it
    as the failure it is (exit 1)."""

    def __init__(self, seconds: float, step: str):
        super().__init__(f"the run passed its deadline of {seconds:g} s (run_deadline_seconds) during {step}")


class Deadline:
    """The run's end (on time.monotonic()'s clock) for the steps after the API's requests: the
    client ends those itself at the same moment, naming the route it waited on. The steps after
    are dlt's and dbt's code, which we cannot poll, so a timer (SIGALRM) ends them; it runs in the
    main thread only, where signals arrive, and never during the publish."""

    def __init__(self, ends: float = math.inf, seconds: float = math.inf):
        self.ends, self.seconds, self.step = ends, seconds, ""
        self._previous: Any = None
        self._armed = False

    @classmethod
    def after(cls, seconds: float | None) -> Deadline:
        """The deadline of a run starting now (none: no deadline)."""
        return cls(time.monotonic() + seconds, seconds) if seconds else cls()

    def enter(self, step: str) -> None:
        """The run goes on with `step`; the timer runs from the first one on."""
        self.step = step
        if self._armed or math.isinf(self.ends) or threading.current_thread() is not threading.main_thread():
            return
        left = self.ends - time.monotonic()
        if left <= 0:
            raise RunDeadline(self.seconds, step)
        if signal.getitimer(signal.ITIMER_REAL)[0] > 0:  # the process's one timer is taken (pytest-timeout)
            return
        self._previous = signal.signal(signal.SIGALRM, self._expired)
        signal.setitimer(signal.ITIMER_REAL, left)
        self._armed = True

    def _expired(self, signum: int, frame: Any) -> None:
        raise RunDeadline(self.seconds, self.step)

    def close(self) -> None:
        if self._armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)
            self._armed = False


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
    deadline: Deadline | None = None,
    **source_options: Any,
) -> ExtractResult:
    """Load the Neon estate into the build: dlt's extract, normalize and load steps, run one by
    one so that the listings held during the extract are freed before the destination loads.
    `plan_only`: read the signals, decide what a run would re-read (`stats.plan`), load nothing.
    `source_options` go to the source (`full_refresh`, `full_refresh_days`, `run_at`)."""
    deadline = deadline or Deadline()
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
                    _normalize_and_load(pipeline, build, rows, deadline)
                estate.consumption_orgs = []  # every organization's is loaded
            del estate
        with Progress(client.stats, enabled=show_progress):
            pipeline.extract(source, loader_file_format=build.loader_file_format)
        if plan_only:
            return ExtractResult(None, client.stats)
        del source
        load_info = _normalize_and_load(pipeline, build, rows, deadline)
    except StepFailed:
        raise
    except Exception as exc:  # dlt wraps the cause in step exceptions
        interrupt = interrupt_in(exc)
        if interrupt is not None:  # Ctrl-C (or SIGTERM during dlt's load): an interrupt, not a failure
            raise interrupt from None
        setup = any(isinstance(e, NeonSetupError) for e in exception_chain(exc))
        raise StepFailed(f"extract failed: {root_cause(exc)}", code=2 if setup else 1) from exc
    tables = {t: n for t, n in rows.items() if not t.startswith("_dlt")}
    return ExtractResult(load_info, client.stats, tables)


def check_typed(schema: dlt.Schema) -> None:
    """Fail the run, before anything loads, on a value its column's type cannot hold
    (`logical_size: "unknown"`): dlt keeps such a value in a variant column beside it
    (`logical_size__v_text`) that no model reads, so totals would silently leave it out. A check
    of the normalized schema rather than dlt's data_type contract: that contract also fails every
    run after a column hint changes in the code (a nullable flag), and Arrow tables' flags differ."""
    for table in schema.data_tables():
        for name, column in table["columns"].items():
            if column.get("variant"):
                base = name.rsplit("__v_", 1)[0]
                expected = table["columns"].get(base, {}).get("data_type", "its type")
                raise StepFailed(
                    f"extract failed: {table['name']}.{base} got a value that is not a {expected} "
                    f"(dlt would keep it in {name}, which no model reads, and totals would leave it "
                    "out); the API sent what its spec does not allow"
                )


def _normalize_and_load(
    pipeline: dlt.Pipeline, build: Build, rows: dict[str, int], deadline: Deadline
) -> LoadInfo:
    """dlt's normalize and load of what was extracted; adds the rows of each table to `rows`."""
    deadline.enter("dlt's normalize")
    memory.release_memory()
    counts = pipeline.normalize().row_counts
    check_typed(pipeline.default_schema)
    memory.release_memory()
    for table, count in counts.items():
        rows[table] = rows.get(table, 0) + count
    workers = memory.load_workers(sum(counts.values()))
    deadline.enter("dlt's load")
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
    env = config.environ_without_secrets()
    env.update(build.dbt_env())
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    # dbt colours its lines even into a file; a scheduler's log (cron's elt.log) gets plain text
    if not sys.stdout.isatty():
        env.setdefault("DBT_USE_COLORS", "false")
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
        command,
        env=env,
        cwd=build.dbt_cwd,
        stdout=subprocess.PIPE,
        text=True,
        errors="replace",
        preexec_fn=_ctrl_c_stops_it,
    ) as process:
        assert process.stdout is not None
        try:
            for line in process.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                if fault_line is None and any(text in line for text in FAULT_TEXTS):
                    fault_line = " ".join(ANSI_ESCAPE.sub("", line).split())
        except KeyboardInterrupt:  # a signal to this process alone, or the deadline: stop dbt
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=DBT_STOP_SECONDS)
            except subprocess.TimeoutExpired:  # dbt waiting on a database that hangs
                process.kill()
            raise
    if process.returncode != 0:
        if fault_line:
            raise StepFailed(f"dbt {args[0]} failed (exit {process.returncode}): {fault_line}")
        raise StepFailed(f"dbt {args[0]} failed (exit {process.returncode}); see its output above")


# How long dbt may take to stop when asked (Ctrl-C, the run's deadline) before it is killed.
DBT_STOP_SECONDS = 10


def _ctrl_c_stops_it() -> None:
    """In dbt's process before it starts: Ctrl-C's signal at its default, which is how the run asks
    dbt to stop. A run started ignoring it (a script's background job) would pass that on, and dbt
    would carry on until killed, its output then trailing the run's last line."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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
    run_deadline_seconds: float | None = None,
    **source_options: Any,
) -> ExtractResult | None:
    """Run the chosen steps in one build of the target (a DuckDB file path means that file).

    dbt's unit tests check the models' logic on fixed inputs, not the data, so scheduled runs
    leave them out, as dbt recommends for production; the test suite runs them (unit_tests=True).
    `plan_only` decides the extract's plan and publishes nothing; `source_options` go to the
    source (`full_refresh`, `full_refresh_days`, `run_at`). The run ends at the client's
    deadline (run_deadline_seconds), or `run_deadline_seconds` from now without a client; past
    it, RunDeadline."""
    if isinstance(target, Path):
        target = DuckDBTarget(target)
    if plan_only:
        with target.build(publish=False) as build:
            plan = extract(build, client, show_progress=False, plan_only=True, **source_options)
            # a run that would refuse this warehouse has no plan but its refusal
            check_origin(
                target.describe(), build.read_origin(), origin_of(client.base_url), build.mixing_remedy
            )
            return plan
    result = None
    deadline = Deadline(client.run_ends, client.retry.run_deadline) if client else None
    deadline = deadline or Deadline.after(run_deadline_seconds)
    try:
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
                    deadline=deadline,
                    **source_options,
                )
                # in a working copy, checked after the extract, so that a wrong URL or key is
                # reported as such first
                check_origin(target.describe(), previous, origin, build.mixing_remedy)
                build.record_origin(origin)
                print(published_load_info(result.load_info, build, target))
                print(summary(result.stats, result.load_id, result.table_rows))
            if do_transform:
                deadline.enter("dbt build")
                args = ["build"] + ([] if unit_tests else ["--exclude-resource-type", "unit_test"])
                dbt(args + (["--vars", json.dumps(dbt_vars)] if dbt_vars else []), build)
                for line in drift_warnings(build):
                    print(line)
            deadline.close()  # the publish, as the build ends, is never cut short
    finally:
        deadline.close()
    return result


def published_load_info(load_info: LoadInfo, build: Any, target: Any) -> LoadInfo:
    """dlt's load info as a dlt user reads it, naming where the data is stored: the warehouse
    readers open, not the working copy dlt loaded and the run publishes when dbt's build passes."""
    if not build.isolated:
        return load_info
    shown = load_info.destination_displayable_credentials.replace(str(build.path), target.describe())
    return load_info._replace(destination_displayable_credentials=shown)


# What a warning names of the values a test found: this many, at most.
DRIFT_VALUES_SHOWN = 5


def drift_warnings(build: Any) -> list[str]:
    """One line per dbt test that warned in the build just run (run_results.json), naming the
    values it found: Neon grows its enumerations (an endpoint type, a region, an operation action, a
    PostgreSQL version), and such a value publishes the warehouse with a warning, not a failure."""
    results = config.dbt_target_path() / "run_results.json"
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
