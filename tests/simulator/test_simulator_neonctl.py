"""Neon's own CLI (neonctl 5.0.1) reads projects, branches, databases and roles from the simulator.

neonctl is installed once into ``<repo>/.tools/neonctl`` (git-ignored) with npm; without npm the
tests skip on a laptop and fail in CI. The commands run concurrently, offline (``--no-analytics``,
a private config directory, no stdin), and their JSON output is compared with the account's data.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from neon_simulator import PRESETS, Account, Simulator
from suite import REPO

NEONCTL_VERSION = "5.0.1"
NEONCTL_DIR = REPO / ".tools" / "neonctl"
NEONCTL = NEONCTL_DIR / "node_modules" / ".bin" / "neonctl"
NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="session")
def neonctl() -> Path:
    return neonctl_in(NEONCTL_DIR, shutil.which("npm"))


def neonctl_in(folder: Path, npm: str | None) -> Path:
    """The neonctl executable in `folder`, installed there with npm on first use. Without npm
    the tests skip on a laptop and fail in CI (CI=true, as .ci/run sets), like the PostgreSQL
    and Chromium tests: `make system-deps` provides npm."""
    executable = folder / "node_modules" / ".bin" / "neonctl"
    if executable.exists():
        return executable
    if npm is None:
        reason = "npm is not installed, so neonctl cannot be installed for the compatibility tests"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (make system-deps installs it)", pytrace=False)
        pytest.skip(reason)
    result = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(folder), f"neonctl@{NEONCTL_VERSION}"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0 or not executable.exists():
        pytest.fail(f"npm could not install neonctl@{NEONCTL_VERSION}:\n{result.stdout}\n{result.stderr}")
    return executable


def test_without_npm_the_tests_fail_in_ci_and_skip_on_a_laptop(monkeypatch, tmp_path):
    def outcome() -> type:
        try:
            neonctl_in(tmp_path, npm=None)
        except (pytest.fail.Exception, pytest.skip.Exception) as raised:  # caught, so this test cannot skip
            assert "npm is not installed" in str(raised)
            return type(raised)
        raise AssertionError("neonctl_in returned without npm and without neonctl")

    monkeypatch.setenv("CI", "true")
    assert outcome() is pytest.fail.Exception
    monkeypatch.delenv("CI")
    assert outcome() is pytest.skip.Exception


@pytest.fixture(scope="module")
def org_account() -> Account:
    """One organization with more projects than neonctl's page size (100), so that it pages."""
    return Account.generate(dataclasses.replace(PRESETS["demo"], orgs=1, projects=130, now=NOW))


@pytest.fixture(scope="module")
def personal_account() -> Account:
    return Account.generate(dataclasses.replace(PRESETS["demo"], orgs=0, seed=11, now=NOW))


@pytest.fixture(scope="module")
def outputs(neonctl, org_account, personal_account, tmp_path_factory):
    """Run every neonctl command against the two simulators at once; parsed JSON per command."""
    home = tmp_path_factory.mktemp("neonctl-home")
    env = {**os.environ, "HOME": str(home), "CI": "true"}
    env.pop("NEON_API_KEY", None)
    org = org_account.organizations[0]["id"]
    pid = busiest_project(org_account)["id"]
    default, child = default_and_child(org_account, pid)
    with Simulator(org_account) as org_sim, Simulator(personal_account) as personal_sim:

        def run(sim: Simulator, *args: str):
            command = [
                str(neonctl),
                *args,
                "--api-host",
                sim.base_url,
                "--api-key",
                sim.api_key,
                "--output",
                "json",
                "--no-analytics",
                "--no-color",
                "--config-dir",
                str(home / "config"),
            ]
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                env=env,
                timeout=60,
                check=False,
            )
            assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
            return json.loads(result.stdout)

        jobs = {
            "projects": (org_sim, "projects", "list", "--org-id", org),
            "branches": (org_sim, "branches", "list", "--project-id", pid),
            "databases": (org_sim, "databases", "list", "--project-id", pid, "--branch", default["name"]),
            "roles": (org_sim, "roles", "list", "--project-id", pid, "--branch", child["id"]),
            "personal": (personal_sim, "projects", "list"),
        }
        with ThreadPoolExecutor(len(jobs)) as pool:
            futures = {name: pool.submit(run, *job) for name, job in jobs.items()}
            results = {name: future.result() for name, future in futures.items()}
        results["requests"] = org_sim.stats.by_request
    return results


def busiest_project(account: Account) -> dict:
    return max(account.all_projects(), key=lambda p: (len(account.branches(p["id"])), p["id"]))


def default_and_child(account: Account, pid: str) -> tuple[dict, dict]:
    branches = account.branches(pid)
    return next(b for b in branches if b["default"]), next(b for b in branches if not b["default"])


def test_projects_list_pages_through_an_organization(outputs, org_account):
    org = org_account.organizations[0]["id"]
    assert [p["id"] for p in outputs["projects"]] == [p["id"] for p in org_account.all_projects(org)]
    assert outputs["projects"] == org_account.all_projects(org)
    project_pages = [r for r in outputs["requests"] if r.startswith("/api/v2/projects?")]
    assert len(project_pages) == 2, project_pages  # 100 + 30: neonctl stops on the short page


def test_branches_list(outputs, org_account):
    pid = busiest_project(org_account)["id"]
    assert outputs["branches"] == org_account.branches(pid)
    assert len(outputs["branches"]) > 1


def test_databases_list_by_branch_name(outputs, org_account):
    pid = busiest_project(org_account)["id"]
    default, _ = default_and_child(org_account, pid)
    assert outputs["databases"] == org_account.databases(pid, default["id"])


def test_roles_list_by_branch_id(outputs, org_account):
    pid = busiest_project(org_account)["id"]
    _, child = default_and_child(org_account, pid)
    assert outputs["roles"] == org_account.roles(pid, child["id"])


def test_projects_list_on_a_personal_account(outputs, personal_account):
    assert outputs["personal"] == {"projects": personal_account.all_projects(), "shared_with_you": []}
