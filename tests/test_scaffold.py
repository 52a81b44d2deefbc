"""supactl.cloud.scaffold (`supactl init`): writes the project, safely on every later run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import tomlkit
from typer.testing import CliRunner

from supactl.cli import app
from supactl.cloud.scaffold import ENV_EXAMPLE, bundled_files, init_project

FUNCTION_INDEX = "supabase/functions/twilio-voice/deno.json"


def statuses(outcomes) -> dict[str, str]:
    return {o.path: o.status for o in outcomes}


def test_first_run_creates_everything_and_second_run_changes_nothing(tmp_path):
    first = statuses(init_project(tmp_path))
    assert set(first.values()) == {"created"}
    assert set(bundled_files()) | {".env.example", "supabase/config.toml", ".gitignore"} == set(first)
    assert any(p.startswith("supabase/migrations/") and p.endswith(".sql") for p in first)
    for rel, content in bundled_files().items():
        assert (tmp_path / rel).read_bytes() == content
    second = statuses(init_project(tmp_path))
    assert set(second.values()) == {"unchanged"}


def test_config_toml_turns_jwt_verification_off(tmp_path):
    init_project(tmp_path)
    config = tomlkit.parse((tmp_path / "supabase/config.toml").read_text())
    assert config["functions"]["twilio-voice"]["verify_jwt"] is False


def test_existing_config_toml_is_edited_in_place_keeping_comments_and_settings(tmp_path):
    original = '''# my project settings
project_id = "acme"   # keep me

[api]
port = 54321 # local API

[functions.twilio-voice]
verify_jwt = true  # was on

[functions.other]
verify_jwt = true
'''
    (tmp_path / "supabase").mkdir()
    (tmp_path / "supabase/config.toml").write_text(original)
    assert statuses(init_project(tmp_path))["supabase/config.toml"] == "updated"
    text = (tmp_path / "supabase/config.toml").read_text()
    assert text == original.replace("verify_jwt = true  # was on", "verify_jwt = false  # was on")
    assert statuses(init_project(tmp_path))["supabase/config.toml"] == "unchanged"


def test_config_toml_without_the_function_gets_its_table_appended(tmp_path):
    (tmp_path / "supabase").mkdir()
    (tmp_path / "supabase/config.toml").write_text('# top comment\nproject_id = "acme"\n')
    init_project(tmp_path)
    text = (tmp_path / "supabase/config.toml").read_text()
    assert text.startswith('# top comment\nproject_id = "acme"\n')
    assert tomlkit.parse(text)["functions"]["twilio-voice"]["verify_jwt"] is False


def test_a_file_the_user_changed_is_skipped_unless_forced(tmp_path):
    init_project(tmp_path)
    (tmp_path / FUNCTION_INDEX).write_text("{}  // mine\n")
    assert statuses(init_project(tmp_path))[FUNCTION_INDEX] == "skipped"
    assert (tmp_path / FUNCTION_INDEX).read_text() == "{}  // mine\n"
    assert statuses(init_project(tmp_path, force=True))[FUNCTION_INDEX] == "overwritten"
    assert (tmp_path / FUNCTION_INDEX).read_bytes() == bundled_files()[FUNCTION_INDEX]


def test_a_file_supactl_wrote_is_updated_when_the_package_changes(tmp_path):
    init_project(tmp_path)
    # What an older supactl would have written, recorded as written by supactl:
    (tmp_path / ".env.example").write_text("OLD=1\n")
    manifest = tmp_path / "supabase/.supactl-init.json"
    recorded = json.loads(manifest.read_text())
    recorded[".env.example"] = hashlib.sha256(b"OLD=1\n").hexdigest()
    manifest.write_text(json.dumps(recorded))
    assert statuses(init_project(tmp_path))[".env.example"] == "updated"
    assert (tmp_path / ".env.example").read_text() == ENV_EXAMPLE


def test_env_example_names_every_variable_with_a_comment():
    names = [line.split("=")[0] for line in ENV_EXAMPLE.splitlines() if line and not line.startswith("#")]
    for name in ("SUPABASE_ACCESS_TOKEN", "SUPABASE_PROJECT_REF", "SUPABASE_DB_URL", "OPENAI_API_KEY",
                 "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_API_KEY", "TWILIO_API_SECRET",
                 "SUPACTL_TWILIO_NUMBERS", "SUPABASE_API_URL", "TWILIO_API_URL", "PUBLIC_URL"):
        assert name in names
    lines = ENV_EXAMPLE.splitlines()
    for index, line in enumerate(lines):
        if line and not line.startswith("#"):
            assert any(lines[j].startswith("#") for j in range(max(0, index - 3), index)), line


def test_gitignore_gets_env_once_and_keeps_its_lines(tmp_path):
    (tmp_path / ".gitignore").write_text("node_modules")
    init_project(tmp_path)
    assert (tmp_path / ".gitignore").read_text().splitlines()[0] == "node_modules"
    assert (tmp_path / ".gitignore").read_text().splitlines().count(".env") == 1
    init_project(tmp_path)
    assert (tmp_path / ".gitignore").read_text().splitlines().count(".env") == 1


def test_gitignore_covers_dev_state_and_supabase_temp_once(tmp_path):
    # `init && git init && dev --demo` used to leave .supactl/ (a Postgres cluster and dev.env with
    # a JWT secret) and supabase/.temp/ showing in `git status`.
    (tmp_path / ".gitignore").write_text(".env\n/.supactl/\n")
    init_project(tmp_path)
    init_project(tmp_path)
    lines = (tmp_path / ".gitignore").read_text().splitlines()
    assert [line for line in lines if not line.startswith("#")] == [".env", "/.supactl/", "supabase/.temp/"]


def test_init_command_reports_each_file(tmp_path):
    target = tmp_path / "new-project"
    result = CliRunner().invoke(app, ["init", str(target)])
    assert result.exit_code == 0, result.output
    assert "created  supabase/config.toml" in result.output
    again = CliRunner().invoke(app, ["init", str(target)])
    assert "unchanged  supabase/config.toml" in again.output and "created" not in again.output


def test_init_ships_no_test_file_of_the_function(tmp_path):
    """Our *_test.ts and testing/ fakes would fail in a user's project (test_database.ts needs
    TEST_DATABASE_URL): init writes the runtime files and migrations only."""
    from supactl.cloud.scaffold import init_project

    init_project(tmp_path)
    written = [p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()]
    function_files = [p for p in written if p.parts[:3] == ("supabase", "functions", "twilio-voice")]
    assert any(p.name == "index.ts" for p in function_files)
    assert [p for p in written if p.name.endswith("_test.ts") or "testing" in p.parts] == []


def _run_pinned_deno(cwd, *args: str):
    import subprocess

    from supactl.dev_stack.deno_runtime import deno_binary, deno_env

    return subprocess.run([str(deno_binary()), *args], cwd=cwd, env=deno_env({"RUST_BACKTRACE": "0", "NO_COLOR": "1"}),
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_the_scaffolded_function_type_checks_and_its_test_task_has_nothing_of_ours_to_fail(tmp_path):
    """What a user does right after `supactl init`: `deno check` and `deno task test` in the
    function folder, with the pinned Deno. Both pass, and no test of ours runs there."""
    init_project(tmp_path)
    function_dir = tmp_path / "supabase" / "functions" / "twilio-voice"
    check = _run_pinned_deno(function_dir, "check", ".")
    assert check.returncode == 0, check.stderr[-4000:]
    tests = _run_pinned_deno(function_dir, "task", "test")
    assert tests.returncode == 0, tests.stderr[-4000:]
    assert "0 passed | 0 failed" in tests.stdout + tests.stderr


@pytest.mark.slow
def test_the_wheel_carries_exactly_the_files_init_writes(tmp_path):
    """The wheel's copy of supabase/ is chosen by the build hook with the rule `init` uses: the
    runtime files and migrations, not the function's tests (hatchling's force-include would copy
    the whole folder)."""
    import subprocess
    import sys
    import zipfile

    from supactl.project_files import product_files

    root = Path(__file__).resolve().parents[1]
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(root)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-4000:]
    (wheel,) = tmp_path.glob("supactl-*.whl")
    prefix = "supactl/_project/supabase/"
    shipped = {name[len(prefix):] for name in zipfile.ZipFile(wheel).namelist() if name.startswith(prefix)}
    expected = {rel.as_posix() for rel in product_files(root / "supabase")}
    assert shipped == expected
    assert not [name for name in shipped if name.endswith("_test.ts") or "/testing/" in name]
