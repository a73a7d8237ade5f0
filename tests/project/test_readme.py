"""Every command the README shows works on a fresh clone: each shell command of its fenced `sh`
blocks, its SQL and its Python, run in a checkout as a newcomer has one (this one's `.venv`
shared), in the README's order: `make demo` first, then the queries on the warehouse it built.

A command that needs a real Neon key or serves until stopped is checked in a dry form; CHECKS
says how each command is checked, one line each, and a command the README gains without a line
there fails the test."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest
from neon_elt import cli
from runs import MAKE_VARIABLES, checkout, last_line
from suite import REPO

README = REPO / "README.md"

RUN = "run"  # as written, in the checkout
NO_KEY = "no key"  # as written, without a key: it must stop at once, exit 2, and name where a key goes
DRY = "dry"  # `make -n`: make knows the target and what it runs
SERVES = "serves"  # `make -n`, and the command behind it answers --help
SKIP = "skip"

# How each shell command of the README is checked, and why when it is not run as written.
CHECKS: dict[str, tuple[str, str]] = {
    "make demo": (RUN, ""),
    "make test": (DRY, "it is this suite: running it here would recurse"),
    "export NEON_API_KEY=napi_...": (SKIP, "needs a real Neon key"),
    "make elt": (NO_KEY, "a real run needs a real Neon key"),
    "make extract": (NO_KEY, "a real run needs a real Neon key"),
    "make plan": (NO_KEY, "reads the signals of a real Neon account"),
    "make transform": (RUN, ""),
    "python neon_api_pipeline.py": (NO_KEY, "a real run needs a real Neon key"),
    "make notebook": (SERVES, "serves until stopped"),
    "make dashboard": (SERVES, "serves until stopped"),
    "make docs": (SERVES, "serves until stopped"),
    "make report": (RUN, ""),
}
# The README's one-line Python query runs as written (its own check below).
PYTHON_ONE_LINER = ".venv/bin/python -c "


def fenced(language: str) -> list[str]:
    return re.findall(rf"^ *```{language}\n(.*?)^ *```", README.read_text(), re.S | re.M)


def shell_commands() -> list[str]:
    """Each line of the `sh` blocks, its trailing comment removed."""
    lines = [line.strip() for block in fenced("sh") for line in block.splitlines()]
    return [re.sub(r"\s+#\s.*$", "", line) for line in lines if line and not line.startswith("#")]


def newcomer_env(dlt_dir: Path) -> dict[str, str]:
    """No key and none of our settings; dlt's local state in the test's folder."""
    # a newcomer's shell: no Neon settings, and not inside `make test`'s make
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NEON_", "SOURCES__", "DESTINATION__")) and k not in MAKE_VARIABLES
    }
    env["DLT_DATA_DIR"] = str(dlt_dir)
    return env


def sh(command: str, folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, shell=True, cwd=folder, env=env, capture_output=True, text=True, timeout=300
    )


def test_every_readme_command_has_a_check():
    commands = shell_commands()
    assert "make demo" in commands and "make test" in commands
    unknown = [c for c in commands if c not in CHECKS and not c.startswith(PYTHON_ONE_LINER)]
    assert not unknown, f"add these to CHECKS: {unknown}"
    assert all(reason for kind, reason in CHECKS.values() if kind != RUN), "each skip says why"


def test_make_help_shows_the_port_make_docs_serves_on():
    port = re.search(r"^PORT \?= (\d+)$", (REPO / "Makefile").read_text(), re.M)[1]
    shown = subprocess.run(
        ["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert "$(" not in shown
    (docs,) = [line for line in shown.splitlines() if line.strip().startswith("make docs ")]
    assert docs.endswith(f"127.0.0.1:{port}")
    moved = subprocess.run(
        ["make", "-s", "help", "PORT=9123"], cwd=REPO, capture_output=True, text=True
    ).stdout
    assert "127.0.0.1:9123" in moved


@pytest.fixture(scope="module")
def clone(demo_account, tmp_path_factory) -> SimpleNamespace:
    """A fresh clone where `make demo`, the README's first command, has run: the checkout
    (`project`), a newcomer's environment (`env`), the warehouse it built and what it printed."""
    assert shell_commands()[0] == "make demo"  # the rest read what it built
    folder = tmp_path_factory.mktemp("fresh-clone")
    project = checkout(folder / "neon-elt")
    env = newcomer_env(folder / "dlt")
    demo = sh("make demo", project, env)
    assert demo.returncode == 0, (demo.stdout + demo.stderr)[-3000:]
    return SimpleNamespace(
        project=project,
        env=env,
        warehouse=project / "neon_api_pipeline.duckdb",
        demo=demo,
        names={p["name"] for p in demo_account.all_projects()},
    )


@pytest.mark.slow
def test_make_demo_on_a_fresh_clone_ends_with_a_query_that_works(clone):
    """Its last line says how to query what it built, with what the checkout has installed."""
    last = last_line(clone.demo.stdout).strip()
    assert last.startswith(PYTHON_ONE_LINER), last
    shown = sh(last, clone.project, clone.env)
    assert shown.returncode == 0 and any(name in shown.stdout for name in clone.names), shown.stderr


@pytest.mark.slow
def test_the_readme_s_sql_and_python_read_what_make_demo_built(clone, demo_account):
    # The SQL, read-only as the README says.
    with duckdb.connect(str(clone.warehouse), read_only=True) as con:
        for statement in [s for block in fenced("sql") for s in block.split(";") if s.strip()]:
            assert con.sql(statement).fetchall(), statement

    # The Python, as written; then what it printed, counted: every version, and the current ones.
    (snippet,) = fenced("python")
    counts = "\nprint('COUNTS', len(dataset.projects.df()), len(dataset('select * from projects where _dlt_valid_to is null').df()))"
    ran = subprocess.run(
        [sys.executable, "-c", snippet + counts],
        cwd=clone.project,
        env=clone.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    every, current = map(int, re.search(r"COUNTS (\d+) (\d+)", ran.stdout).groups())
    assert current == len(demo_account.all_projects()) <= every

    # The snippet leaves dlt's local state of the pipeline; make dashboard still shows the schema.
    state = subprocess.run(
        [
            sys.executable,
            "-c",
            "import dlt; from pathlib import Path; from neon_elt import marimo_apps; "
            "marimo_apps.restore_local_state(Path('neon_api_pipeline.duckdb').resolve()); "
            "print(dlt.attach('neon_api_pipeline').schema_names)",
        ],
        cwd=clone.project,
        env=clone.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "neon_api" in state.stdout, state.stderr


@pytest.mark.slow
def test_the_readme_s_other_commands_work_in_its_order_on_that_clone(clone, capsys):
    project, env, warehouse = clone.project, clone.env, clone.warehouse
    for command in shell_commands()[1:]:
        kind, _ = CHECKS.get(command, (RUN, ""))
        if kind == SKIP:
            continue
        if kind in (DRY, SERVES):
            target = command.split()[1]
            dry = sh(f"make -n {target}", project, env)
            assert dry.returncode == 0 and dry.stdout.strip(), (command, dry.stderr)
            if kind == SERVES:  # the runner's command behind it, asked in this process: no start-up
                with pytest.raises(SystemExit) as helped:
                    cli.main([target, "--help"])
                assert helped.value.code == 0 and "--port" in capsys.readouterr().out, command
            continue
        if command.startswith("python "):
            command = shlex.quote(sys.executable) + command[len("python") :]
        before = warehouse.stat().st_mtime_ns
        result = sh(command, project, env)
        output = result.stdout + result.stderr
        if kind == NO_KEY:
            # make exits 2 for any failure and names the runner's code: 2, configuration.
            assert result.returncode == 2, output
            if command.startswith("make"):
                assert "Error 2" in output, output
            assert "NEON_API_KEY" in output and "Traceback" not in output, output
            assert warehouse.stat().st_mtime_ns == before, f"{command} touched the warehouse"
            continue
        assert result.returncode == 0, f"{command}\n{output[-3000:]}"
        if command.startswith(PYTHON_ONE_LINER):
            assert any(name in result.stdout for name in clone.names), result.stdout
        elif command == "make report":
            assert (project / "reports" / "neon_estate_report.html").read_text().startswith("<!")

    # make clean keeps its promise: build output and reports go, the warehouse stays.
    cleaned = sh("make clean", project, env)
    assert cleaned.returncode == 0, cleaned.stderr
    assert warehouse.exists() and not (project / "reports").exists()  # an emptied folder goes too
    assert (REPO / ".venv" / "bin" / "python").exists()  # the link went, not the environment


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings."""
    headings = re.findall(r"^#+ (.*)$", re.sub(r"```.*?```", "", page.read_text(), flags=re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_link_of_the_readme_and_docs_leads_somewhere():
    """The moved text links across pages: each file and heading it names exists."""
    broken = []
    for page in [README, *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"https?:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists() or (anchor and anchor not in anchors(linked)):
                broken.append(f"{page.name}: {target}")
    assert not broken


# A path into the repository as text names it: a top folder, then at least one more part (not
# within a URL).
REPO_PATH = re.compile(
    r"(?<![\w/.-])(?:tests|extract|dbt_project|docs|bench|notebooks|\.ci|\.github)/[\w./-]*\w"
)


def test_every_repository_path_a_file_names_exists():
    """A file moved (the tests into folders by area) leaves no comment, doc or workflow pointing
    at where it was. A path git ignores is one a run makes (dbt_project/target), not a stale one."""

    def git(*args: str, stdin: str = "") -> list[str]:
        done = subprocess.run(["git", *args], cwd=REPO, input=stdin, capture_output=True, text=True)
        return done.stdout.splitlines()

    tracked = git("ls-files")
    assert tracked, "git ls-files listed nothing"
    absent = []
    for name in tracked:
        path = REPO / name
        if path.suffix in (".json", ".csv", ".lock") or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            absent += [(f"{name}:{number}", m) for m in REPO_PATH.findall(line) if not (REPO / m).exists()]
    # git matches an ignored folder's pattern (`dbt_project/target/`) on what would be inside it
    asked = "\n".join(f"{m}\n{m}/-" for _, m in absent)
    made_by_a_run = {
        path.removesuffix("/-") for path in git("check-ignore", "--no-index", "--stdin", stdin=asked)
    }
    stale = [f"{where}: {m}" for where, m in absent if m not in made_by_a_run]
    assert not stale


@pytest.mark.slow
def test_the_snippet_run_before_any_run_does_not_leave_a_dashboard_of_nothing(tmp_path, monkeypatch):
    """Run where no warehouse is yet, the README's snippet fails, and dlt leaves an empty
    neon_api_pipeline.duckdb behind; make dashboard and make notebook then say there is no
    warehouse yet, instead of serving dlt's "No schemas found"."""
    from neon_elt import config, marimo_apps

    folder = tmp_path / "clone"
    (folder / ".dlt").mkdir(parents=True)
    (folder / ".dlt" / "config.toml").symlink_to(REPO / ".dlt" / "config.toml")
    (snippet,) = fenced("python")
    tried = subprocess.run(
        [sys.executable, "-c", snippet],
        cwd=folder,
        env=newcomer_env(tmp_path / "dlt"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tried.returncode != 0 and (folder / config.DEFAULT_WAREHOUSE).is_file()
    monkeypatch.delenv("NEON_DUCKDB_PATH", raising=False)
    monkeypatch.chdir(folder)
    with pytest.raises(config.ConfigError, match="run `make demo` or `make elt` first"):
        marimo_apps.published_warehouse()
