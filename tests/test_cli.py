"""The CLI shell: fast to start, and heavy libraries loaded only by the commands that need them."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from supactl import __version__
from supactl.cli import app

HEAVY = ["psycopg", "httpx", "supabase", "websockets", "postgrest", "gotrue"]


def test_version_prints_the_package_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"supactl {__version__}"


def test_help_imports_no_heavy_library():
    probe = (
        "import sys, json\n"
        "from supactl.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []
