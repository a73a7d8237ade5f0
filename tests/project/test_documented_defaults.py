"""The documented defaults are the code's: each is written once in the code (the source's spec,
dbt_project.yml) and the figures of the README and docs/ are checked against it here."""

from __future__ import annotations

import re

from expected import dbt_vars
from neon_api_source.configuration import NeonApiSourceConfiguration
from suite import REPO

# The README and the pages of docs/ it links to, as one text.
README = "\n".join(p.read_text() for p in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))])


def _tuning_table() -> dict[str, str]:
    """`key -> default` from the table under "Tuning lives in" (docs/configuration.md)."""
    section = README[README.index("Tuning lives in") :]
    rows = {}
    lines = section.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| key |")) + 2
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        keys, default = line.split("|")[1:3]
        names = re.findall(r"`(\w+)`", keys)
        values = [v.strip() for v in default.split(",")]
        rows.update(zip(names, values, strict=True))
    return rows


def test_the_readme_tuning_table_gives_the_source_s_own_defaults():
    documented = _tuning_table()
    defaults = NeonApiSourceConfiguration()
    assert documented, "the table was not found"
    for key, value in documented.items():
        actual = getattr(defaults, key)
        if isinstance(actual, bool):
            assert value == str(actual).lower(), key
        else:
            assert float(value.replace(",", "")) == actual, key


def test_the_readme_stale_threshold_is_dbt_s():
    stale_after_days = dbt_vars()["stale_after_days"]
    assert f"counts as stale after {stale_after_days} days" in README


def test_dbt_lists_the_consumption_metrics_the_extract_asks_for():
    """dbt's metric macros are written from settings.CONSUMPTION_METRICS and
    BRANCH_CONSUMPTION_METRICS: `python -m neon_elt.dbt_facts`."""
    from neon_elt import dbt_facts

    assert dbt_facts.CONSUMPTION_METRICS_MACRO.read_text() == dbt_facts.consumption_metrics_macro(), (
        "run `.venv/bin/python -m neon_elt.dbt_facts`"
    )


def test_the_readme_idle_replica_threshold_is_dbt_s():
    days = dbt_vars()["idle_replica_after_days"]
    assert f"`idle_replica_after_days` (dbt var, {days})" in README
