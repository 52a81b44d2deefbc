"""The fleet's Kubernetes objects: valid against pinned Kubernetes schemas (offline, strict), secrets
by reference only, and the probes, drain and timeouts a voice stream needs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from supactl.selfhost import manifests
from supactl.selfhost.manifests import FleetSettings, project_env, render
from supactl.selfhost.yaml_text import dump_documents

SECRETS = {
    "TWILIO_AUTH_TOKEN": "f3a1c9d2e4b5a6978877665544332211",
    "OPENAI_API_KEY": "sk-proj-manifests-test-0123456789abcdef",
    "SUPABASE_SERVICE_ROLE_KEY": "eyJhbGciOiJIUzI1NiJ9.manifests-test.signature",
    "SUPABASE_DB_URL": "postgresql://postgres.abcdefghijklmnopqrst:Very-Long-Db-Password-42@"
                       "aws-0-eu-west-1.pooler.supabase.com:6543/postgres",
    "SUPABASE_ACCESS_TOKEN": "sbp_" + "0123456789abcdef" * 2 + "01234567",
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
}
PLAIN = {"SUPABASE_URL": "https://abcdefghijklmnopqrst.supabase.co", "OPENAI_REALTIME_MODEL": "gpt-realtime",
         "TURN_STORE": "postgres"}


@pytest.fixture
def project(tmp_path):
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in {**SECRETS, **PLAIN}.items()))
    return tmp_path


def _settings(project, **overrides) -> FleetSettings:
    values = {"image": "registry.example.com/voice/twilio-voice:1.0", "host": "voice.example.com",
              "project_env": project_env(project, environ={}), **overrides}
    return FleetSettings(**values)


def _by_kind(documents):
    return {document["kind"]: document for document in documents}


@pytest.mark.parametrize("version", manifests.KUBERNETES_VERSIONS)
def test_every_object_validates_strictly_against_the_pinned_schema(project, version):
    documents = list(yaml.safe_load_all(dump_documents(render(_settings(project)))))
    assert [d["kind"] for d in documents] == ["Deployment", "Service", "HorizontalPodAutoscaler",
                                              "PodDisruptionBudget", "Ingress"]
    for document in documents:
        assert kubernetes_validate.validate(document, version, strict=True) == version.rsplit(".", 1)[0]


def test_strict_validation_rejects_an_unknown_field(project):
    deployment = render(_settings(project))[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, manifests.KUBERNETES_VERSIONS[-1], strict=True)


def test_the_yaml_text_reads_back_as_the_objects(project):
    documents = render(_settings(project))
    assert list(yaml.safe_load_all(dump_documents(documents))) == documents


def test_no_secret_value_is_rendered_only_references(project):
    settings = _settings(project, project_env=project_env(project, environ={"OPENAI_API_KEY": "sk-from-environ-x"}))
    text = dump_documents(render(settings)) + json.dumps(render(settings))
    for value in [*SECRETS.values(), "sk-from-environ-x", "Very-Long-Db-Password-42"]:
        assert value not in text
    env = {e["name"]: e for e in _by_kind(render(settings))["Deployment"]["spec"]["template"]["spec"]
           ["containers"][0]["env"]}
    for name in ("TWILIO_AUTH_TOKEN", "OPENAI_API_KEY", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_DB_URL"):
        assert set(env[name]) == {"name", "valueFrom"}
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "twilio-voice"
    assert env["SUPABASE_URL"]["value"] == PLAIN["SUPABASE_URL"]
    assert env["PUBLIC_URL"]["value"] == "https://voice.example.com/twilio-voice"
    assert "SUPABASE_ACCESS_TOKEN" not in env and "TWILIO_ACCOUNT_SID" not in env


def test_the_turn_stores_credential_is_required_and_the_other_optional(project):
    for store, required, optional in (("postgres", "SUPABASE_DB_URL", "SUPABASE_SERVICE_ROLE_KEY"),
                                      ("rest", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_DB_URL")):
        keys = manifests.secret_keys(_settings(project, project_env={"TURN_STORE": store}))
        assert keys[required] is True and keys[optional] is False
        assert keys["TWILIO_AUTH_TOKEN"] is keys["OPENAI_API_KEY"] is True


def test_pods_probe_drain_and_run_locked_down(project):
    deployment = _by_kind(render(_settings(project)))["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["lifecycle"]["preStop"] == {"sleep": {"seconds": manifests.PRESTOP_PAUSE_S}}
    assert pod["terminationGracePeriodSeconds"] >= (manifests.PRESTOP_PAUSE_S + manifests.DRAIN_BOUND_S
                                                   + manifests.SHUTDOWN_FLUSH_S)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert "requests" in container["resources"] and "memory" in container["resources"]["limits"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_the_ingress_keeps_a_call_long_websocket_open(project):
    objects = _by_kind(render(_settings(project)))
    annotations = objects["Ingress"]["metadata"]["annotations"]
    for name in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{name}"]) >= manifests.MAX_CALL_S
    assert objects["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    assert objects["HorizontalPodAutoscaler"]["spec"]["minReplicas"] == 3


@pytest.mark.parametrize("overrides, message", [
    ({"image": " "}, "no image"),
    ({"host": "https://voice.example.com"}, "host name"),
    ({"replicas": 1}, "2 or more"),
    ({"replicas": 4, "max_replicas": 3}, "max-replicas"),
    ({"project_env": {"TURN_STORE": "redis"}}, "TURN_STORE"),
])
def test_render_refuses_settings_a_fleet_cannot_run_with(project, overrides, message):
    from supactl.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        render(_settings(project, **overrides))


def test_the_drain_bound_and_probe_paths_are_the_functions_own():
    function_dir = Path(__file__).resolve().parents[1] / "supabase" / "functions" / "twilio-voice"
    index = (function_dir / "index.ts").read_text(encoding="utf-8")
    ops = (function_dir / "ops_endpoints.ts").read_text(encoding="utf-8")
    drain_ms = re.search(r"const DRAIN_BOUND_MS = ([0-9_]+);", index)
    flush_ms = re.search(r"const SHUTDOWN_FLUSH_MS = ([0-9_]+);", index)
    assert drain_ms and flush_ms
    assert int(drain_ms.group(1).replace("_", "")) == manifests.DRAIN_BOUND_S * 1000
    assert int(flush_ms.group(1).replace("_", "")) == manifests.SHUTDOWN_FLUSH_S * 1000
    assert f'HEALTH_PATH = "{manifests.HEALTH_PATH}"' in ops and f'READY_PATH = "{manifests.READY_PATH}"' in ops


def test_a_fleet_runs_without_a_wall_clock_and_takes_the_metrics_token_by_reference(project):
    container = _by_kind(render(_settings(project)))["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    env = {entry["name"]: entry for entry in container["env"]}
    assert env["WALL_CLOCK_LIMIT_S"]["value"] == "0"
    assert env["METRICS_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert "value" not in env["METRICS_TOKEN"]
