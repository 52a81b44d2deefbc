"""`supactl selfhost …` at the CLI edge: output forms, and user errors as one line and an exit code."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from supactl.cli import app

FLEET = ["--image", "registry.example.com/twilio-voice:1.0", "--host", "voice.example.com"]


def _invoke(*args: str):
    return CliRunner().invoke(app, ["selfhost", *args])


def test_manifests_print_yaml_for_kubectl(tmp_path):
    result = _invoke("manifests", *FLEET, "--workdir", str(tmp_path))
    assert result.exit_code == 0, result.output
    kinds = [d["kind"] for d in yaml.safe_load_all(result.stdout)]
    assert kinds == ["Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Ingress"]


def test_manifests_write_a_file_and_name_the_secrets_keys(tmp_path):
    out = tmp_path / "fleet.yaml"
    result = _invoke("manifests", *FLEET, "--replicas", "4", "--out", str(out), "--workdir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "TWILIO_AUTH_TOKEN, OPENAI_API_KEY, SUPABASE_DB_URL" in result.stdout
    deployment = next(yaml.safe_load_all(out.read_text()))
    assert deployment["spec"]["replicas"] == 4


def test_manifests_json_carries_the_objects_and_the_secret_keys(tmp_path):
    (tmp_path / ".env").write_text("TURN_STORE=rest\n")
    result = _invoke("manifests", *FLEET, "--json", "--workdir", str(tmp_path))
    assert result.exit_code == 0, result.output
    rendered = json.loads(result.stdout)
    assert rendered["secret_keys"]["SUPABASE_SERVICE_ROLE_KEY"] is True
    assert rendered["secret_keys"]["SUPABASE_DB_URL"] is False
    assert [o["kind"] for o in rendered["objects"]][0] == "Deployment"


def test_manifests_refuse_one_replica_with_a_configuration_error(tmp_path):
    result = _invoke("manifests", *FLEET, "--replicas", "1", "--workdir", str(tmp_path))
    assert result.exit_code == 2
    assert "error: --replicas must be 2 or more" in result.output


def test_build_refuses_a_folder_holding_other_files(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    result = _invoke("build", "--out", str(tmp_path), "--workdir", str(tmp_path))
    assert result.exit_code == 1
    assert "is not empty and holds no earlier bundle" in result.output


def test_build_refuses_a_deno_that_is_not_there(tmp_path):
    result = _invoke("build", "--out", str(tmp_path / "bundle"), "--deno", str(tmp_path / "deno"))
    assert result.exit_code == 1
    assert f"error: no Deno binary at {tmp_path / 'deno'}" in result.output
    assert not (tmp_path / "bundle").exists()
