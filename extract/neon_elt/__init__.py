"""The runner: `neon-elt` (and the Makefile's targets) runs the Neon source into a warehouse,
then dbt over it, and serves what it built.

- `cli.py`: the `neon-elt` commands (`elt`, `extract`, `transform`, `demo`, `docs`, `report`,
  `summary`, `dashboard`, `notebook`, `hash-email`); bad input is one line and a non-zero exit;
- `run.py`: the two halves, the dlt pipeline `neon_api_pipeline` into `neon_api_data` and
  `dbt build`, in one build of the target;
- `targets.py`: the warehouses it builds (DuckDB, PostgreSQL); `warehouse.py`: a DuckDB build in a
  working copy, published with one atomic rename;
- `config.py`: the runner's own settings (the source's are neon_api_source/configuration.py);
- `memory.py`: what keeps a large extract within its memory budget;
- `progress.py`: the live progress line and the end-of-run summary;
- `marts_summary.py`, `report/`, `marimo_apps.py`: what the marts show (a printed summary, the
  HTML report, dlt's dashboard and the analysts' notebook); `views.py`: what the report and the
  notebook both show (the headline figures, words for the marts' identifiers and units);
- `dbt_facts.py`: the extract's facts dbt needs, written into dbt's macros.
"""
