"""Kubernetes objects for a fleet of the function: Deployment, Service, HorizontalPodAutoscaler,
PodDisruptionBudget and Ingress, rendered from the project's settings.

Credentials reach the pods from a Secret by reference (`secretKeyRef`), never as values: what is
rendered can be committed and reviewed. Only non-secret settings of the project (SUPABASE_URL, the
model, the turn store, the wall clock) are written as values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from supactl.errors import ConfigError
from supactl.project_files import FUNCTION_NAME
from supactl.selfhost.function_settings import SECRET_SETTINGS
from supactl.selfhost.runtime_bundle import FUNCTION_PORT, NONROOT_UID

# The Kubernetes versions the rendered objects are validated against (tests/test_selfhost_manifests.py,
# offline, strict, with the schemas kubernetes-validate ships): the newest it ships, and 1.30, the
# oldest where every field used here is on by default — the preStop `sleep` action (KEP-3960: beta
# and on by default in 1.30, GA in 1.34), needed because the shell-less image has no `sleep` binary.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")

HEALTH_PATH = "/healthz"  # live: the process answers
READY_PATH = "/readyz"  # not ready while draining or while the database is unreachable

# The drain on SIGTERM (index.ts) makes /readyz 503 and refuses new streams at once, then hands
# every live call to another worker through the handoff path (trigger "drain"): at once, waiting
# only for a tool the call is running, and never past DRAIN_BOUND_MS = 30 s (index.ts); then it
# flushes the turn store (SHUTDOWN_FLUSH_MS, 2 s, index.ts) and exits. The grace period covers the preStop pause, that bound, the flush and a
# margin; past it Kubernetes sends SIGKILL and the calls left are resumed from the store.
DRAIN_BOUND_S = 30
SHUTDOWN_FLUSH_S = 2
# Time for the endpoint removal to reach the Service and the Ingress before SIGTERM, so no new
# call is routed to a pod that is about to drain.
PRESTOP_PAUSE_S = 5
GRACE_MARGIN_S = 8

# A WebSocket stream lasts as long as its call with WALL_CLOCK_LIMIT_S=0 (no handoff on a timer):
# the proxy must not time it out before Twilio's own maximum call length, 4 h (the Calls API's
# TimeLimit default, https://www.twilio.com/docs/voice/api/call-resource).
MAX_CALL_S = 4 * 60 * 60

# Placeholders until the fleet benchmark measures CPU per call-minute and RSS per call; one idle
# worker from the bundle holds ~90 MB RSS (docs/self-hosting.md, "Capacity planning").
DEFAULT_RESOURCES = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}
DEFAULT_CPU_TARGET_PERCENT = 60
TMP_SIZE_LIMIT = "64Mi"

# Settings copied as values when the project sets them (the rest of the function's settings are
# either secrets, or fixed by the manifests: PORT, HOST, PUBLIC_URL).
PLAIN_SETTINGS = ("SUPABASE_URL", "OPENAI_REALTIME_URL", "OPENAI_REALTIME_MODEL", "TURN_STORE", "WALL_CLOCK_LIMIT_S")
# Which credential each turn store needs; the other one is referenced as optional.
_STORE_CREDENTIAL = {"postgres": "SUPABASE_DB_URL", "rest": "SUPABASE_SERVICE_ROLE_KEY"}
_ALWAYS_REQUIRED = ("TWILIO_AUTH_TOKEN", "OPENAI_API_KEY")


@dataclass(frozen=True)
class FleetSettings:
    image: str
    host: str
    replicas: int = 3
    max_replicas: int = 10
    name: str = FUNCTION_NAME
    secret_name: str = FUNCTION_NAME
    tls_secret_name: str = f"{FUNCTION_NAME}-tls"
    ingress_class: str = "nginx"
    # The project's settings (environment and .env): only PLAIN_SETTINGS are read from it.
    project_env: Mapping[str, str] = field(default_factory=dict)

    def check(self) -> None:
        if not self.image.strip():
            raise ConfigError("no image", hint="pass --image REGISTRY/NAME:TAG, built from `supactl selfhost build`")
        if not self.host or "/" in self.host or ":" in self.host:
            raise ConfigError(f"--host must be a host name (e.g. voice.example.com), not {self.host!r}")
        if self.replicas < 2:
            raise ConfigError("--replicas must be 2 or more",
                              hint="a drain hands calls to another worker: one replica has none to hand them to")
        if self.max_replicas < self.replicas:
            raise ConfigError("--max-replicas must be at least --replicas")
        store = self.turn_store()
        if store not in _STORE_CREDENTIAL:
            raise ConfigError(f'TURN_STORE must be "rest" or "postgres", not {store!r}')

    def turn_store(self) -> str:
        # A fleet writes through Supabase's transaction pooler (SUPABASE_DB_URL on port 6543).
        return self.project_env.get("TURN_STORE") or "postgres"

    @property
    def public_url(self) -> str:
        return f"https://{self.host}/{FUNCTION_NAME}"


def project_env(project_dir: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The project's non-secret settings (environment over .env); credentials are not even read."""
    from supactl.config import read_dotenv

    environ = os.environ if environ is None else environ
    dotenv = read_dotenv(project_dir)
    return {name: value for name in PLAIN_SETTINGS if (value := environ.get(name) or dotenv.get(name))}


def grace_period_s() -> int:
    return PRESTOP_PAUSE_S + DRAIN_BOUND_S + SHUTDOWN_FLUSH_S + GRACE_MARGIN_S


def secret_keys(settings: FleetSettings) -> dict[str, bool]:
    """The keys the Secret holds, each with whether the pods need it to start."""
    needed = set(_ALWAYS_REQUIRED) | {_STORE_CREDENTIAL[settings.turn_store()]}
    return {name: name in needed for name in SECRET_SETTINGS}


def render(settings: FleetSettings) -> list[dict[str, Any]]:
    settings.check()
    return [deployment(settings), service(settings), autoscaler(settings), disruption_budget(settings),
            ingress(settings)]


def _labels(settings: FleetSettings) -> dict[str, str]:
    return {"app.kubernetes.io/name": settings.name, "app.kubernetes.io/part-of": "supactl"}


def _metadata(settings: FleetSettings, **extra: Any) -> dict[str, Any]:
    return {"name": settings.name, "labels": _labels(settings), **extra}


def _environment(settings: FleetSettings) -> list[dict[str, Any]]:
    plain = {name: settings.project_env[name] for name in PLAIN_SETTINGS if settings.project_env.get(name)}
    # No wall clock on a fleet: nothing is handed off on a timer, only a drain moves calls.
    plain.setdefault("WALL_CLOCK_LIMIT_S", "0")
    plain.update({"TURN_STORE": settings.turn_store(), "PUBLIC_URL": settings.public_url,
                  "PORT": str(FUNCTION_PORT), "HOST": "0.0.0.0"})
    env: list[dict[str, Any]] = [{"name": name, "value": plain[name]} for name in sorted(plain)]
    for name, required in secret_keys(settings).items():
        ref: dict[str, Any] = {"name": settings.secret_name, "key": name}
        if not required:
            ref["optional"] = True
        env.append({"name": name, "valueFrom": {"secretKeyRef": ref}})
    return env


def _probe(path: str, period_s: int, failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period_s, "failureThreshold": failures,
            "timeoutSeconds": 2}


def deployment(settings: FleetSettings) -> dict[str, Any]:
    container = {
        "name": settings.name,
        "image": settings.image,
        "ports": [{"name": "http", "containerPort": FUNCTION_PORT, "protocol": "TCP"}],
        "env": _environment(settings),
        "readinessProbe": _probe(READY_PATH, 2, 2),
        "livenessProbe": _probe(HEALTH_PATH, 10, 3),
        "startupProbe": _probe(HEALTH_PATH, 1, 30),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_PAUSE_S}}},
        "resources": DEFAULT_RESOURCES,
        "securityContext": {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(settings),
        "spec": {
            "replicas": settings.replicas,
            "selector": {"matchLabels": _labels(settings)},
            # One new worker before one old one drains: live calls always have somewhere to go.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": _labels(settings)},
                "spec": {
                    "terminationGracePeriodSeconds": grace_period_s(),
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": NONROOT_UID,
                        "runAsGroup": NONROOT_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}}],
                },
            },
        },
    }


def service(settings: FleetSettings) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(settings),
        "spec": {
            "selector": _labels(settings),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def autoscaler(settings: FleetSettings) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(settings),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": settings.name},
            "minReplicas": settings.replicas,
            "maxReplicas": settings.max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": DEFAULT_CPU_TARGET_PERCENT}}}],
            # Scaling in drains a worker's calls onto the others: do it slowly, one pod at a time.
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300,
                                       "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}},
        },
    }


def disruption_budget(settings: FleetSettings) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(settings),
        # One worker drains at a time, as in a rolling deploy.
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _labels(settings)}},
    }


def ingress(settings: FleetSettings) -> dict[str, Any]:
    timeout = str(MAX_CALL_S)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _metadata(settings, annotations={
            # ingress-nginx: a media stream is one long WebSocket; the defaults (60 s) would cut it.
            "nginx.ingress.kubernetes.io/proxy-read-timeout": timeout,
            "nginx.ingress.kubernetes.io/proxy-send-timeout": timeout,
        }),
        "spec": {
            "ingressClassName": settings.ingress_class,
            # Twilio requires https for the webhook and wss for the stream.
            "tls": [{"hosts": [settings.host], "secretName": settings.tls_secret_name}],
            "rules": [{"host": settings.host, "http": {"paths": [{
                "path": f"/{FUNCTION_NAME}",
                "pathType": "Exact",
                "backend": {"service": {"name": settings.name, "port": {"name": "http"}}},
            }]}}],
        },
    }
