"""Run the pipeline `neon_api_pipeline`, as dltHub's "Neon Python API" page does:

    python neon_api_pipeline.py

It is `make elt`: the same runner (extract/neon_elt), settings (NEON_API_KEY or .dlt/secrets.toml,
NEON_DUCKDB_PATH, TARGET's NEON_ELT_TARGET, .dlt/config.toml), summary and exit codes (0; 1 for a
failed run, 2 for configuration, 3 when another run holds the warehouse). Options go to
`neon-elt elt`, e.g. `python neon_api_pipeline.py --full-refresh`. Started by a Python outside the
project's environment, it runs itself again with .venv's (`make env` creates it).
"""

import os
import sys
from pathlib import Path

VENV_PYTHON = Path(__file__).resolve().parent / ".venv" / "bin" / "python"

if __name__ == "__main__":
    try:
        from neon_elt.cli import console
    except ModuleNotFoundError:
        if not VENV_PYTHON.exists() or Path(sys.prefix).resolve() == VENV_PYTHON.parents[1].resolve():
            sys.exit("neon_api_pipeline.py: the project's environment is missing: run `make env` first")
        os.execv(VENV_PYTHON, [str(VENV_PYTHON), __file__, *sys.argv[1:]])
    sys.exit(console(["elt", *sys.argv[1:]]))
