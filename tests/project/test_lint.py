"""The lint the README promises: sqlfluff over the dbt project's SQL with the committed .sqlfluff,
and ruff (check and format) over the Python. `make lint` runs the same tools on the same paths.

Each check is also shown failing on a mutated copy, so a check that silently checks nothing (no
files found, a config that is not read) cannot pass here."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from suite import REPO

BIN = Path(sys.executable).parent
SQL_PATHS = ("dbt_project/models", "dbt_project/macros", "dbt_project/tests")
PYTHON_PATHS = ("extract", "tests", "bench", "notebooks", "neon_api_pipeline.py")
MART = REPO / "dbt_project" / "models" / "marts" / "projects.sql"


def sqlfluff_lint(*paths: str | Path) -> dict[str, list[str]]:
    """`sqlfluff lint` with the committed .sqlfluff, also for files outside the repository: for
    each file linted, its violations as `CODE line:col description`."""
    result = subprocess.run(
        [str(BIN / "sqlfluff"), "lint", "--config", str(REPO / ".sqlfluff"), "--format", "json", "--nofail"]
        + [str(path) for path in paths],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return {
        entry["filepath"]: [
            f"{v['code']} {v['start_line_no']}:{v['start_line_pos']} {v['description']}"
            for v in entry["violations"]
        ]
        for entry in json.loads(result.stdout)
    }


@pytest.fixture(scope="module")
def sqlfluff_results(tmp_path_factory) -> dict[str, list[str]]:
    """One sqlfluff run (it takes seconds to start and parse) over the project's SQL and two
    copies of a mart: as it is, and with its first `select` upper-cased."""
    folder = tmp_path_factory.mktemp("lint")
    text = MART.read_text()
    (folder / "as_is").mkdir()
    (folder / "mutated").mkdir()
    (folder / "as_is" / MART.name).write_text(text)
    (folder / "mutated" / MART.name).write_text(
        re.sub(r"^(\s*)select\b", r"\1SELECT", text, count=1, flags=re.MULTILINE)
    )
    return sqlfluff_lint(*SQL_PATHS, folder / "as_is" / MART.name, folder / "mutated" / MART.name)


def ruff(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "ruff"), *args], cwd=REPO, input=stdin, capture_output=True, text=True, timeout=120
    )


def test_the_dbt_sql_passes_sqlfluff_with_the_committed_config(sqlfluff_results):
    project = {path: found for path, found in sqlfluff_results.items() if not Path(path).is_absolute()}
    expected = {str(p.relative_to(REPO)) for folder in SQL_PATHS for p in (REPO / folder).rglob("*.sql")}
    assert set(project) == expected and len(expected) > 20
    assert {path: found for path, found in project.items() if found} == {}


def test_sqlfluff_fails_a_mart_that_gains_an_upper_case_keyword(sqlfluff_results):
    """The copy as it is passes; the copy with one `select` upper-cased fails, on that line only,
    for keyword capitalisation (CP01)."""
    copies = {
        Path(path).parent.name: found for path, found in sqlfluff_results.items() if Path(path).is_absolute()
    }
    line = next(
        n for n, text in enumerate(MART.read_text().splitlines(), 1) if re.match(r"\s*select\b", text)
    )
    assert copies["as_is"] == []
    assert [v.split(":")[0] for v in copies["mutated"]] == [f"CP01 {line}"], copies["mutated"]


def test_the_python_passes_ruff_check():
    result = ruff("check", *PYTHON_PATHS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_python_is_formatted_as_ruff_format_would():
    result = ruff("format", "--check", *PYTHON_PATHS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_fails_an_unused_import_and_unformatted_code():
    """The repository's settings apply to a file named inside it (read from stdin, nothing written)."""
    source = (REPO / "extract" / "neon_elt" / "__main__.py").read_text()
    name = "extract/neon_elt/__main__.py"
    assert ruff("check", "--stdin-filename", name, "-", stdin=source).returncode == 0
    assert ruff("check", "--stdin-filename", name, "-", stdin="import os\n" + source).returncode == 1
    assert ruff("format", "--check", "--stdin-filename", name, "-", stdin=source).returncode == 0
    unformatted = source.replace("\n", "\n\n\n\n", 1)
    assert ruff("format", "--check", "--stdin-filename", name, "-", stdin=unformatted).returncode == 1
