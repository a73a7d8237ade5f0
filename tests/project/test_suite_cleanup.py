"""A test run cleans up after itself: what it writes outside pytest's own temporary folders (which
pytest rotates, keeping the last three) is gone when it ends, so that running the suite often does
not fill the disk."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from suite import REPO


@pytest.mark.slow  # a pytest session of its own
def test_a_test_run_leaves_nothing_in_the_temporary_folder_but_pytest_s_own(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_ADDOPTS", None)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0"]
        + ["tests/project/test_python_layout.py", "-k", "every_folder"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "1 passed" in run.stdout
    left = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("pytest-of-"))
    assert left == []
