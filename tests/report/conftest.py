"""The `realistic` account's warehouse, which the report's layout and cost tests both read: built
once per test run for every xdist worker, as tests/conftest.py builds the demo's."""

from __future__ import annotations

from pathlib import Path

import pytest
from neon_elt.run import elt
from neon_simulator import PRESETS, Account, Simulator
from suite import built_once, client_for


@pytest.fixture(scope="session")
def realistic_warehouse(shared_dir) -> Path:
    """The `realistic` preset (120 projects, every region): long names, crowded map. Read it, or
    copy it to change it."""

    def build(folder: Path) -> None:
        with Simulator(Account.generate(PRESETS["realistic"])) as simulator:
            elt(folder / "neon_api.duckdb", client_for(simulator), show_progress=False)

    return built_once(shared_dir, "realistic", build) / "neon_api.duckdb"
