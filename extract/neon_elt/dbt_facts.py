"""Facts of the extract that dbt needs at compile time, written into dbt's macros from the one
place each lives, so that dbt, run by the runner or on its own, reads the same.

`python -m neon_elt.dbt_facts` writes them; tests/project/test_documented_defaults.py fails when a
written macro no longer matches its source.
"""

from __future__ import annotations

from neon_api_source import settings

from .config import DBT_PROJECT_DIR

CONSUMPTION_METRICS_MACRO = DBT_PROJECT_DIR / "macros" / "neon_consumption_metrics.sql"


def consumption_metrics_macro() -> str:
    """The macros listing the metrics the extract asks consumption history for: the project's
    (settings.CONSUMPTION_METRICS, the columns of the consumption pivot) and the branch's
    (settings.BRANCH_CONSUMPTION_METRICS)."""

    def listed(metrics: tuple[str, ...]) -> str:
        return "".join(f"        '{metric}',\n" for metric in metrics)

    return (
        "{#- Written by `python -m neon_elt.dbt_facts` from extract/neon_api_source/settings.py\n"
        "    (CONSUMPTION_METRICS, BRANCH_CONSUMPTION_METRICS): change them there. The metrics the\n"
        "    extract asks Neon's consumption history for, in the order Neon's spec lists them: the\n"
        "    columns of the consumption pivot; then those of the branch consumption. -#}\n"
        "{% macro neon_consumption_metrics() -%}\n"
        "    {{ return([\n"
        f"{listed(settings.CONSUMPTION_METRICS)}"
        "    ]) }}\n"
        "{%- endmacro %}\n"
        "\n"
        "{% macro neon_branch_consumption_metrics() -%}\n"
        "    {{ return([\n"
        f"{listed(settings.BRANCH_CONSUMPTION_METRICS)}"
        "    ]) }}\n"
        "{%- endmacro %}\n"
    )


def main() -> None:
    CONSUMPTION_METRICS_MACRO.write_text(consumption_metrics_macro())
    print(f"written: {CONSUMPTION_METRICS_MACRO}")


if __name__ == "__main__":
    main()
