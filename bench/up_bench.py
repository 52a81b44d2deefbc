"""`supactl up` end to end, as a user runs it, against the local contract servers and a real Postgres.

Each run is a fresh `supactl up --json` process (CLI start included) in a project made by
`supactl init`: the first run applies the migrations, sets the secrets, deploys and links the
number; the second finds everything in place and only reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from supactl.dev_stack.postgres_server import EmbeddedPostgres
from tests.contract_servers.stack import cloud_stack


def _timed_up(project: Path, environ: dict[str, str]) -> tuple[float, dict]:
    env = {**os.environ, **environ}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "supactl", "up", "--json"], cwd=project, env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"supactl up failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return elapsed, json.loads(done.stdout)


def run(repeats: int = 3) -> dict:
    first_runs, second_runs = [], []
    with tempfile.TemporaryDirectory(prefix="supactl-bench-up-") as folder:
        server = EmbeddedPostgres(Path(folder) / "pg")
        server.start()
        try:
            for index in range(repeats):
                with cloud_stack(server, Path(folder) / f"run{index}") as stack:
                    first, report = _timed_up(stack.project, stack.environ)
                    assert {s["status"] for s in report["steps"]} == {"changed"}, report
                    second, report = _timed_up(stack.project, stack.environ)
                    assert {s["status"] for s in report["steps"]} == {"unchanged"}, report
                    first_runs.append(first)
                    second_runs.append(second)
        finally:
            server.stop()
    return {
        "repeats": repeats,
        "first_run_s": round(sorted(first_runs)[len(first_runs) // 2], 3),
        "second_run_s": round(sorted(second_runs)[len(second_runs) // 2], 3),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
