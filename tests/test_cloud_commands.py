"""The thin commands over the Management API: `secrets set|list|unset` and `deploy`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from supactl.cli import app
from supactl.cloud.management_api import secret_digest
from tests.contract_servers.management_api import ManagementApiServer

FIXTURES = Path(__file__).parent / "fixtures" / "official_cli"


@pytest.fixture
def api():
    with ManagementApiServer() as server:
        yield server


@pytest.fixture
def env(api):
    return {"SUPABASE_ACCESS_TOKEN": api.token, "SUPABASE_PROJECT_REF": api.ref, "SUPABASE_API_URL": api.base_url}


def invoke(args, env, workdir: Path):
    return CliRunner().invoke(app, [*args, "--workdir", str(workdir)], env=env)


def test_secrets_set_from_an_env_file_skips_reserved_names(api, env, tmp_path):
    env_file = tmp_path / "prod.env"
    env_file.write_text("SUPABASE_URL=https://x.supabase.co\nOPENAI_API_KEY=sk-file-123456789\nMODE=prod\n")
    result = invoke(["secrets", "set", "MODE=override", "--env-file", str(env_file)], env, tmp_path)
    assert result.exit_code == 0, result.output
    assert "skipping SUPABASE_URL" in result.output
    (request,) = api.requests
    assert request.json() == [{"name": "OPENAI_API_KEY", "value": "sk-file-123456789"},
                                        {"name": "MODE", "value": "override"}]
    assert f"set MODE  sha256:{secret_digest('override')[:16]}" in result.output
    assert "sk-file-123456789" not in result.output


@pytest.mark.parametrize("arg", ["SUPABASE_ANON_KEY=x", "NO_EQUALS_SIGN", "9LIVES=x"])
def test_secrets_set_refuses_bad_input_before_any_request(api, env, tmp_path, arg):
    result = invoke(["secrets", "set", arg], env, tmp_path)
    assert result.exit_code == 2, result.output
    assert api.requests == []


def test_secrets_list_shows_digests_never_values(api, env, tmp_path):
    api.put_secret("OPENAI_API_KEY", "sk-listed-abcdef")
    result = invoke(["secrets", "list"], env, tmp_path)
    assert result.exit_code == 0
    assert secret_digest("sk-listed-abcdef")[:16] in result.output and "sk-listed-abcdef" not in result.output
    as_json = json.loads(invoke(["secrets", "list", "--json"], env, tmp_path).stdout)["secrets"]
    assert as_json[0]["name"] == "OPENAI_API_KEY" and as_json[0]["digest"] == secret_digest("sk-listed-abcdef")
    api.assert_only_reads()


def test_secrets_unset_deletes_by_name(api, env, tmp_path):
    api.put_secret("OLD", "value-123456")
    assert invoke(["secrets", "unset", "OLD"], env, tmp_path).exit_code == 0
    assert api.secrets == {} and api.requests[0].json() == ["OLD"]


def test_deploy_uploads_confirms_and_prints_the_url(api, env, tmp_path):
    shutil.copytree(FIXTURES / "deploy_with_imports" / "project", tmp_path, dirs_exist_ok=True)
    result = invoke(["deploy"], env, tmp_path)
    assert result.exit_code == 0, result.output
    assert f"URL: https://{api.ref}.supabase.co/functions/v1/twilio-voice" in result.output
    assert "version 1: ACTIVE, verify_jwt off" in result.output
    assert [c[0] for c in api.calls()] == ["POST", "GET"]
    # Deploy always uploads when asked, even if nothing changed.
    assert invoke(["deploy"], env, tmp_path).exit_code == 0
    assert api.functions["twilio-voice"].version == 2


def test_deploy_refuses_an_empty_function_folder_before_any_request(api, env, tmp_path):
    (tmp_path / "supabase/functions/twilio-voice").mkdir(parents=True)
    result = invoke(["deploy"], env, tmp_path)
    assert result.exit_code == 2 and "is empty" in result.output
    assert api.requests == []


def test_deploy_turns_verify_jwt_back_off_when_the_platform_enables_it(api, env, tmp_path):
    shutil.copytree(FIXTURES / "deploy_single_file" / "project", tmp_path, dirs_exist_ok=True)
    invoke(["deploy"], env, tmp_path)
    api.functions["twilio-voice"].verify_jwt = True
    # A platform that ignores the metadata flag: the confirmation step must PATCH it off.
    original = api._deploy_function

    def deploy_ignoring_flag(record, ref):
        status, body = original(record, ref)
        api.functions["twilio-voice"].verify_jwt = True
        return status, {**body, "verify_jwt": True}

    api._deploy_function = deploy_ignoring_flag
    assert invoke(["deploy"], env, tmp_path).exit_code == 0
    assert api.calls()[-1][0] == "PATCH" and api.functions["twilio-voice"].verify_jwt is False
