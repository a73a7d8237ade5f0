"""The cost and usage marts (branch_costs, compute_hygiene, project_daily_usage, and what
stale_branches and projects gained) against numbers computed here from what the simulator
served. Nothing is typed in: windows count from the marts' own `observed_at`, thresholds and
prices come from dbt_project.yml or from the vars a test passes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import client_for
from expected import query, query_dicts
from neon_elt.run import elt
from neon_simulator import PRESETS, Account, Simulator

REPO = Path(__file__).resolve().parents[1]


def naive(moment: datetime) -> datetime:
    """A datetime as the marts hold it: naive UTC."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


# ------------------------------------------------------------------------ the daily usage trend


def served_counters(account: Account) -> dict[str, dict]:
    """Per current project: its synthetic storage size, and per current branch its logical size,
    compute time and written data, as the API serves them now."""
    return {
        project["id"]: {
            "synthetic": project.get("synthetic_storage_size"),
            "branches": {
                b["id"]: (b.get("logical_size"), b["compute_time_seconds"], b["written_data_bytes"])
                for b in account.branches(project["id"])
            },
        }
        for project in account.all_projects()
    }


@pytest.fixture(scope="module")
def three_days(tmp_path_factory) -> SimpleNamespace:
    """Three daily runs of a demo account with a day of churn before the second and the third
    (30% of the projects active, 20% changed): incremental runs, so the projects whose signals did
    not move are not re-read, and their branches have no new reading. dbt builds once, at the end."""
    account = Account.generate(dataclasses.replace(PRESETS["demo"], seed=31))
    warehouse = tmp_path_factory.mktemp("three-days") / "neon_api.duckdb"
    days = []
    with Simulator(account) as simulator:
        for n in range(3):
            if n:
                account.churn_day(active_share=0.3, changed_share=0.2)
            served = served_counters(account)
            client = client_for(simulator)
            elt(warehouse, client, do_transform=n == 2, show_progress=False, run_at=account.now)
            reread = {
                pid
                for pid, at in query(
                    warehouse,
                    "select object_id, confirmed_at from neon_api_data.confirmations where object_kind = 'project'",
                )
                if naive(at) == naive(account.now)
            }
            days.append(SimpleNamespace(day=account.now.date(), served=served, reread=reread))
    return SimpleNamespace(account=account, warehouse=warehouse, days=days)


def test_the_runs_left_projects_unread(three_days):
    """The premise of the carry-forward: later runs re-read some projects, not all."""
    projects = set(three_days.days[0].served)
    assert three_days.days[0].reread == projects
    for later in three_days.days[1:]:
        assert later.reread and set(later.served) - later.reread


def grown(now: int, then: int) -> int:
    """What a billing-period counter added since `then`: after a drop (a new period), all of it."""
    return now if now < then else now - then


def test_daily_usage_sums_the_branches_a_project_had_each_day(three_days):
    """Each project and run day: storage and counters summed over the branches it had that day, a
    branch not re-read counting with its last reading (equal to what Neon served, since its
    signals did not move), and what the counters added since the previous day."""
    rows = query_dicts(three_days.warehouse, "select * from marts.project_daily_usage")
    actual = {(r["project_id"], r["usage_date"]): r for r in rows}
    expected = {}
    previous = None
    for run in three_days.days:
        for pid, facts in run.served.items():
            branches = facts["branches"]
            sizes = [size for size, _, _ in branches.values() if size is not None]
            added = None
            if previous is not None and pid in previous.served:
                before = previous.served[pid]["branches"]
                added = [0, 0]
                for bid, (_, compute, written) in branches.items():
                    _, compute_before, written_before = before.get(bid, (None, 0, 0))
                    added[0] += grown(compute, compute_before)
                    added[1] += grown(written, written_before)
            expected[(pid, run.day)] = {
                "usage_date": run.day,
                "previous_usage_date": previous.day
                if previous is not None and pid in previous.served
                else None,
                "synthetic_storage_size_bytes": facts["synthetic"],
                "logical_size_bytes": sum(sizes) if sizes else None,
                "compute_time_seconds": sum(c for _, c, _ in branches.values()),
                "written_data_bytes": sum(w for _, _, w in branches.values()),
                "compute_time_seconds_added": added[0] if added else None,
                "written_data_bytes_added": added[1] if added else None,
                "branch_count": len(branches),
                "carried_forward_branch_count": 0 if pid in run.reread else len(branches),
                "is_deleted_project": False,
            }
        previous = run
    assert set(actual) == set(expected)
    for key, wanted in expected.items():
        assert {k: actual[key][k] for k in wanted} == wanted, key
    assert any(r["carried_forward_branch_count"] for r in rows), "some branches were carried forward"
    assert any(r["compute_time_seconds_added"] for r in rows), "some projects used compute"
