"""The report survives any name: control characters, NUL, no name at all, 100 KB,
right-to-left overrides and markup, in projects, branches and organizations, as Neon could serve
them. The report is written by `neon-elt report` in a child process, as `make report` runs it: a
panic in the chart renderer ends that process, not the test run."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from expected import query
from neon_elt.run import elt
from neon_simulator import PRESETS, Account, Simulator
from runs import run_cli
from suite import client_for

# runs the pipeline and dbt: `make test-fast` leaves it out
pytestmark = pytest.mark.slow

LONG = "long-" + "x" * 100_000
SCRIPT = "<script>alert('name')</script>"
HOSTILE = [
    "ctl\x01\x07\x1b[31mred\x1b[0m\ttab",
    "nul\x00byte",
    LONG,
    "\u202eevil\u202c \u200fright-to-left",
    SCRIPT,
    None,
]
# What no page may hold: C0 controls but tab and newline, DEL, C1 controls, bidirectional overrides
# and isolates (they reorder the text after them).
UNSHOWABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> tuple[Account, Path, str]:
    """A warehouse whose projects, branches and organization carry the names above, and the
    `neon-elt report` that ran on it (its page)."""
    account = Account.generate(PRESETS["demo"])
    projects = account.all_projects()
    for project, name in zip(projects, HOSTILE, strict=False):
        account.rename_project(project["id"], name)
    for project, name in zip(projects[len(HOSTILE) :], HOSTILE, strict=False):
        account.rename_branch(project["id"], account.branches(project["id"])[-1]["id"], name)
    account._orgs[0]["name"] = SCRIPT + LONG
    folder = tmp_path_factory.mktemp("hostile names")
    warehouse = folder / "neon_api.duckdb"
    with Simulator(account) as simulator:
        elt(warehouse, client_for(simulator), show_progress=False)
    env = {**os.environ, "NEON_DUCKDB_PATH": str(warehouse)}
    env.pop("NEON_ELT_TARGET", None)
    done = run_cli("report", "--output", str(folder / "report.html"), env=env, cwd=folder)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    return account, warehouse, (folder / "report.html").read_text(encoding="utf-8")


def test_the_report_renders_hostile_names_escaped(hostile):
    _, warehouse, page = hostile
    stored = {name for (name,) in query(warehouse, "select project_name from marts.projects")}
    assert SCRIPT in stored and None in stored  # the warehouse holds the names as Neon served them
    assert "<script" not in page
    assert "&lt;script&gt;alert(" in page
    assert not UNSHOWABLE.findall(page)
    assert "ctl" in page and "right-to-left" in page and "(no name)" in page


def test_a_100_kb_name_is_shortened_for_display(hostile):
    _, _, page = hostile
    assert "long-xxx" in page
    assert "x" * 1000 not in page
    assert len(page.encode()) < 2_000_000


def test_the_header_names_the_warehouse_file_not_its_folder(hostile):
    _, warehouse, page = hostile
    meta = re.search(r'<p class="meta">(.*?)</p>', page, re.S).group(1)
    assert warehouse.name in meta
    assert str(warehouse.parent) not in page
