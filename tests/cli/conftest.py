"""Fixtures of the scheduled-run scenarios."""

from __future__ import annotations

import pytest
from neon_simulator import PRESETS, Account


@pytest.fixture(scope="module")
def tiny_account() -> Account:
    """The smallest generated account, one per module: a module's tests may change it."""
    return Account.generate(PRESETS["tiny"])
