"""The twilio-voice Edge Function's own checks, run with the pinned Deno (the `deno` wheel, like
Supabase's runtime): formatting, lint, type-check, and its Deno test suite against real Postgres."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from supactl.dev_stack.deno_runtime import deno_binary, deno_env

FUNCTION_DIR = Path(__file__).resolve().parent.parent / "supabase" / "functions" / "twilio-voice"

pytestmark = pytest.mark.slow


def run_deno(*args: str, extra_env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """Run deno in the function folder; fail the test with the tool's own output."""
    result = subprocess.run(
        [str(deno_binary()), *args],
        cwd=FUNCTION_DIR,
        # Deno prints a Rust backtrace on a failing exit when RUST_BACKTRACE is set: noise here.
        env=deno_env({"RUST_BACKTRACE": "0", **(extra_env or {})}),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        pytest.fail(
            f"deno {' '.join(args)} exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-20000:]}\n--- stderr ---\n{result.stderr[-20000:]}",
            pytrace=False,
        )
    return result


def test_function_is_formatted() -> None:
    run_deno("fmt", "--check")


def test_function_passes_lint() -> None:
    run_deno("lint")


def test_entry_point_type_checks() -> None:
    run_deno("check", "index.ts")


def test_every_module_and_test_type_checks() -> None:
    run_deno("check", ".")


def test_deno_test_suite_passes_against_real_postgres(db_url: str) -> None:
    result = run_deno("test", "-A", extra_env={"TEST_DATABASE_URL": db_url}, timeout=540)
    # A suite that ran nothing would also exit 0.
    summary = [line for line in result.stdout.splitlines() if " passed | " in line]
    assert summary and not summary[-1].startswith("ok | 0 passed"), result.stdout[-2000:]
