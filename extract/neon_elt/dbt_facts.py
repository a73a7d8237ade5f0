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
    """The macro listing the metrics the extract asks consumption history for
    (settings.CONSUMPTION_METRICS): the columns of the consumption pivot."""
    items = "".join(f"        '{metric}',\n" for metric in settings.CONSUMPTION_METRICS)
    return (
        "{#- Written by `python -m neon_elt.dbt_facts` from extract/neon_api_source/settings.py\n"
        "    (CONSUMPTION_METRICS): change it there. The metrics the extract asks Neon's consumption\n"
        "    history for, in the order Neon's spec lists them: the columns of the consumption pivot. -#}\n"
        "{% macro neon_consumption_metrics() -%}\n"
        "    {{ return([\n"
        f"{items}"
        "    ]) }}\n"
        "{%- endmacro %}\n"
    )


def main() -> None:
    CONSUMPTION_METRICS_MACRO.write_text(consumption_metrics_macro())
    print(f"written: {CONSUMPTION_METRICS_MACRO}")


if __name__ == "__main__":
    main()
