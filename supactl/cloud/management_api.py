"""The Supabase Management API (https://api.supabase.com/v1), the parts supactl uses.

Every function takes an `httpx.Client` made by `management_client` (or any client whose base URL
is the API root and that carries the bearer token), and returns typed results. Requests match what
`supabase` CLI 2.117.0 sends for the same input (golden copies in tests/fixtures/official_cli/).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets as _random
from dataclasses import dataclass
from typing import Iterable, Mapping

import httpx

from supactl.cloud.deploy_bundle import FunctionBundle
from supactl.cloud.http_client import RetryPolicy, Service, Trace, api_client
from supactl.config import ManagementSettings
from supactl.errors import ApiError, ConfigError
from supactl.redact import register

_HINTS = {
    401: "SUPABASE_ACCESS_TOKEN was refused: create a new one at https://supabase.com/dashboard/account/tokens",
    403: "this access token cannot manage the project: check SUPABASE_PROJECT_REF and the token's organization",
    404: "check SUPABASE_PROJECT_REF: it is the 20 letters after /project/ in the dashboard URL",
    429: "the Management API allows about 120 requests a minute: wait a minute and retry",
}

SERVICE = Service("Supabase Management API", hint_for_status=_HINTS.get)

SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SECRET_NAME_MAX = 256  # CreateSecretBody in the OpenAPI spec
SECRET_VALUE_MAX = 24576


def management_client(settings: ManagementSettings, *, trace: Trace | None = None,
                      retry: RetryPolicy | None = None,
                      transport: httpx.BaseTransport | None = None) -> httpx.Client:
    register(settings.access_token)
    return api_client(settings.api_url, SERVICE, trace=trace, retry=retry, transport=transport,
                      headers={"Authorization": f"Bearer {settings.access_token}"})


@dataclass(frozen=True)
class Project:
    ref: str
    name: str
    region: str
    status: str

    @property
    def is_active(self) -> bool:
        return self.status == "ACTIVE_HEALTHY"


@dataclass(frozen=True)
class Secret:
    name: str
    digest: str  # the API returns SHA-256 of the value, never the value
    updated_at: str | None


@dataclass(frozen=True)
class Function:
    id: str
    slug: str
    name: str
    status: str
    version: int
    verify_jwt: bool | None
    entrypoint_path: str | None
    import_map_path: str | None
    ezbr_sha256: str | None

    @classmethod
    def from_json(cls, body: Mapping) -> "Function":
        return cls(
            id=str(body["id"]), slug=body["slug"], name=body.get("name", body["slug"]),
            status=body["status"], version=int(body["version"]), verify_jwt=body.get("verify_jwt"),
            entrypoint_path=body.get("entrypoint_path"), import_map_path=body.get("import_map_path"),
            ezbr_sha256=body.get("ezbr_sha256"),
        )


def secret_digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def check_secret_name(name: str) -> None:
    if name.upper().startswith("SUPABASE_"):
        raise ConfigError(f"secret name {name} starts with SUPABASE_, which is reserved",
                          hint="the platform sets SUPABASE_URL, SUPABASE_SERVICE_ROLE_KEY, … itself; pick another name")
    if not SECRET_NAME.match(name) or len(name) > SECRET_NAME_MAX:
        raise ConfigError(f"invalid secret name {name!r}",
                          hint="use letters, digits and _ , not starting with a digit (like an environment variable)")


def get_project(client: httpx.Client, ref: str) -> Project:
    body = client.get(f"/v1/projects/{ref}").json()
    return Project(ref=body["ref"], name=body.get("name", ""), region=body.get("region", ""),
                   status=body.get("status", "UNKNOWN"))


def list_secrets(client: httpx.Client, ref: str) -> list[Secret]:
    body = client.get(f"/v1/projects/{ref}/secrets").json()
    return [Secret(name=s["name"], digest=s["value"].lower(), updated_at=s.get("updated_at")) for s in body]


def set_secrets(client: httpx.Client, ref: str, values: Mapping[str, str]) -> None:
    """Create or replace secrets. Names and sizes are checked before anything is sent. Values are
    not masked here: callers register the ones that are credentials (a PUBLIC_URL is not)."""
    for name, value in values.items():
        check_secret_name(name)
        if len(value) > SECRET_VALUE_MAX:
            raise ConfigError(f"secret {name} is longer than {SECRET_VALUE_MAX} characters")
    if not values:
        return
    # Compact separators: byte-identical to the official CLI's body.
    body = json.dumps([{"name": n, "value": v} for n, v in values.items()], separators=(",", ":"))
    client.post(f"/v1/projects/{ref}/secrets", content=body.encode(),
                headers={"Content-Type": "application/json"})


def unset_secrets(client: httpx.Client, ref: str, names: Iterable[str]) -> None:
    names = list(names)
    for name in names:
        check_secret_name(name)
    if names:
        client.request("DELETE", f"/v1/projects/{ref}/secrets", content=json.dumps(names).encode(),
                       headers={"Content-Type": "application/json"})


def get_function(client: httpx.Client, ref: str, slug: str) -> Function | None:
    """The deployed function, or None if there is none with this slug."""
    try:
        return Function.from_json(client.get(f"/v1/projects/{ref}/functions/{slug}").json())
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def deploy_form(bundle: FunctionBundle, boundary: str | None = None) -> tuple[str, bytes]:
    """(Content-Type, body) of the deploy upload: one `file` part per source file, then `metadata`
    with `verify_jwt: false` always explicit (some CLI versions re-enabled it when absent)."""
    boundary = boundary or "----WebKitFormBoundary" + _random.token_hex(16)
    metadata = {
        "entrypoint_path": bundle.entrypoint_path,
        "import_map_path": bundle.import_map_path,
        "static_patterns": [],
        "verify_jwt": False,
        "name": bundle.slug,
    }
    chunks: list[bytes] = []
    for source in bundle.files:
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{source.path}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode() + source.content + b"\r\n"
        )
    chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n'.encode()
                  + json.dumps(metadata, separators=(",", ":")).encode() + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(chunks)


def deploy_function(client: httpx.Client, ref: str, bundle: FunctionBundle,
                    boundary: str | None = None) -> Function:
    content_type, body = deploy_form(bundle, boundary)
    response = client.post(f"/v1/projects/{ref}/functions/deploy", params={"slug": bundle.slug},
                           content=body, headers={"Content-Type": content_type, "Accept": "application/json"})
    return Function.from_json(response.json())


def set_verify_jwt(client: httpx.Client, ref: str, slug: str, verify_jwt: bool) -> Function:
    response = client.patch(f"/v1/projects/{ref}/functions/{slug}", json={"verify_jwt": verify_jwt})
    return Function.from_json(response.json())

