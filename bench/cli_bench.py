"""Cold start of `supactl --help` / `--version`, against `supabase --help` when that CLI is installed.

Each command runs `runs` times in a fresh process; the median wall time is reported. Set
SUPABASE_CLI to the official CLI's path (e.g. node_modules/.bin/supabase) to get the ratio.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time


def _median_seconds(argv: list[str], runs: int) -> float:
    subprocess.run(argv, capture_output=True, check=False)  # warm the page cache, as a user's second run is
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 3)


def run(runs: int = 15) -> dict:
    supactl = [sys.executable, "-m", "supactl"]
    result = {
        "runs": runs,
        "supactl_help_s": _median_seconds([*supactl, "--help"], runs),
        "supactl_version_s": _median_seconds([*supactl, "--version"], runs),
        "bare_python_s": _median_seconds([sys.executable, "-c", "pass"], runs),
    }
    official = os.environ.get("SUPABASE_CLI") or shutil.which("supabase")
    if official:
        result["supabase_help_s"] = _median_seconds([official, "--help"], runs)
        result["help_ratio"] = round(result["supactl_help_s"] / result["supabase_help_s"], 2)
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
