"""The accounts the simulator tests read, each served by one simulator for the whole test run:
the tests only read them (a test that changes an account generates its own)."""

from __future__ import annotations

import pytest
from neon_simulator import Account, Simulator
from simulator_helpers import spec_of


@pytest.fixture(scope="session")
def demo() -> Account:
    return Account.generate(spec_of("demo"))


@pytest.fixture(scope="session")
def demo_sim(demo):
    with Simulator(demo) as sim:
        yield sim


@pytest.fixture(scope="session")
def realistic() -> Account:
    """The 120-project preset: long listings to page through."""
    return Account.generate(spec_of("realistic"))


@pytest.fixture(scope="session")
def realistic_sim(realistic):
    with Simulator(realistic) as sim:
        yield sim
