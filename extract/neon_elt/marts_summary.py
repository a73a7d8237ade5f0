"""A short, printed summary of the marts (the end of `make demo`, and `neon-elt summary`)."""

from __future__ import annotations

from pathlib import Path

import duckdb


def print_marts_summary(warehouse: Path) -> None:
    connection = duckdb.connect(str(warehouse), read_only=True)
    try:
        totals = connection.execute(
            """
            select
                count(distinct project_id),
                count(*),
                count(case when is_stale then 1 end),
                coalesce(sum(database_count), 0),
                coalesce(sum(endpoint_count), 0),
                coalesce(sum(logical_size_bytes), 0)
            from marts.project_branch_inventory
            """
        ).fetchone()
        regions = connection.execute(
            """
            select region_id, project_count, branch_count, endpoint_count, total_logical_size_bytes
            from marts.regional_footprint
            order by project_count desc, region_id
            """
        ).fetchall()
    finally:
        connection.close()

    projects, branches, stale, databases, computes, size = totals
    print(f"\nWarehouse {warehouse}")
    print(
        f"  {projects} projects, {branches} branches ({stale} stale), {computes} computes, "
        f"{databases} databases, {size / 2**30:.2f} GiB logical size"
    )
    print(f"\n  {'region':<22} {'projects':>8} {'branches':>8} {'computes':>8} {'GiB':>8}")
    for region_id, n_projects, n_branches, n_computes, region_size in regions:
        print(
            f"  {region_id:<22} {n_projects:>8} {n_branches:>8} {n_computes:>8} "
            f"{region_size / 2**30:>8.2f}"
        )
    print(
        "\n  Query it: duckdb -readonly "
        f"{warehouse.name} \"select * from marts.project_branch_inventory limit 10\""
    )
