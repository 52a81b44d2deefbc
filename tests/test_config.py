"""supactl.config: where each setting comes from, and refusing malformed ones before any request."""

from __future__ import annotations

import pytest

from supactl import config
from supactl.errors import ConfigError
from supactl.redact import redact

TOKEN = "sbp_" + "0123456789abcdef" * 2 + "01234567"
REF = "abcdefghijklmnopqrst"


def test_flag_beats_environment_beats_dotenv(tmp_path):
    (tmp_path / ".env").write_text("OPENAI_API_KEY=from-dotenv\nOTHER=dotenv-only\n")
    env = {"OPENAI_API_KEY": "from-env"}
    assert config.lookup("OPENAI_API_KEY", "from-flag", project_dir=tmp_path, environ=env) == "from-flag"
    assert config.lookup("OPENAI_API_KEY", project_dir=tmp_path, environ=env) == "from-env"
    assert config.lookup("OTHER", project_dir=tmp_path, environ=env) == "dotenv-only"


def test_project_ref_sources_in_order(tmp_path):
    linked = tmp_path / "supabase" / ".temp" / "project-ref"
    linked.parent.mkdir(parents=True)
    linked.write_text("linkedlinkedlinkedli\n")
    assert config.project_ref(project_dir=tmp_path, environ={}) == "linkedlinkedlinkedli"
    (tmp_path / ".env").write_text("SUPABASE_PROJECT_ID=dotenvdotenvdotenvdo\n")
    assert config.project_ref(project_dir=tmp_path, environ={}) == "dotenvdotenvdotenvdo"
    assert config.project_ref(project_dir=tmp_path, environ={"SUPABASE_PROJECT_ID": REF}) == REF
    assert config.project_ref("flagflagflagflagflag", project_dir=tmp_path, environ={"SUPABASE_PROJECT_REF": REF}) \
        == "flagflagflagflagflag"


@pytest.mark.parametrize("bad", ["ABCDEFGHIJKLMNOPQRST", "abc", "abcdefghijklmnopqrs1"])
def test_a_malformed_project_ref_is_refused_naming_its_source(tmp_path, bad):
    with pytest.raises(ConfigError, match="from SUPABASE_PROJECT_REF is not 20 lowercase letters"):
        config.project_ref(project_dir=tmp_path, environ={"SUPABASE_PROJECT_REF": bad})


def test_a_missing_project_ref_says_where_to_find_it(tmp_path):
    with pytest.raises(ConfigError) as caught:
        config.project_ref(project_dir=tmp_path, environ={})
    assert "SUPABASE_PROJECT_REF" in caught.value.hint and "supabase link" in caught.value.hint


@pytest.mark.parametrize("token", [TOKEN, "sbp_oauth_" + "a" * 40])
def test_access_token_formats_accepted(tmp_path, token):
    assert config.access_token(project_dir=tmp_path, environ={"SUPABASE_ACCESS_TOKEN": token}) == token


@pytest.mark.parametrize("token", ["sbp_" + "A" * 40, "sbp_" + "a" * 39, "eyJhbGciOiJIUzI1NiJ9.anon.key"])
def test_a_malformed_access_token_is_refused_without_echoing_it(tmp_path, token):
    with pytest.raises(ConfigError) as caught:
        config.access_token(project_dir=tmp_path, environ={"SUPABASE_ACCESS_TOKEN": token})
    assert token not in caught.value.message + (caught.value.hint or "")
    assert "dashboard/account/tokens" in caught.value.hint


def test_a_missing_variable_is_named_with_where_to_get_it(tmp_path):
    with pytest.raises(ConfigError) as caught:
        config.openai_api_key(project_dir=tmp_path, environ={})
    assert caught.value.message == "OPENAI_API_KEY is not set"
    assert "https://platform.openai.com/api-keys" in caught.value.hint


def test_credentials_read_from_config_are_masked_everywhere(tmp_path):
    config.access_token(project_dir=tmp_path, environ={"SUPABASE_ACCESS_TOKEN": TOKEN})
    key = "sk-unique-" + "q" * 30
    config.openai_api_key(project_dir=tmp_path, environ={"OPENAI_API_KEY": key})
    assert redact(f"token {TOKEN} key {key}") == "token *** key ***"


def test_api_url_override_and_default(tmp_path):
    assert config.supabase_api_url(project_dir=tmp_path, environ={}) == "https://api.supabase.com"
    assert config.supabase_api_url(project_dir=tmp_path, environ={"SUPABASE_API_URL": "http://127.0.0.1:9/"}) \
        == "http://127.0.0.1:9"
    with pytest.raises(ConfigError):
        config.supabase_api_url(project_dir=tmp_path, environ={"SUPABASE_API_URL": "api.supabase.com"})
