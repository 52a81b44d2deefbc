"""A local stand-in for the Supabase Management API (v1): projects, secrets, functions.

It implements the contract, not a happy path. Requests are checked against the OpenAPI spec
(supabase/cli's `api/beta.yaml`, as JSON in the shared contracts; the few rules used are copied
below as tables): method and path (`ref` ^[a-z]{20}$, slugs), `Authorization: Bearer sbp_…` in the
documented token format and equal to the project's token, JSON bodies (CreateSecretBody,
DeleteSecretsBody, V1UpdateFunctionBody) and the deploy multipart (FunctionDeployBody: a
`metadata` part with `entrypoint_path`, `file` parts, the entrypoint and import map among them).
Errors answer `{"message": …}` like the real API. State is kept: secrets as SHA-256 digests,
functions with versions and `verify_jwt` (defaulting to true when a deploy leaves it out, which is
the platform's behaviour the CLI had to work around). It can be told to fail the next N requests
(429 / 5xx, with Retry-After) and records every request.

Stricter than the real service on purpose: unknown JSON keys are refused instead of ignored.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from .local_http import LocalHttpServer, RecordedRequest, Reply, json_reply

TOKEN = re.compile(r"^sbp_(oauth_)?[a-f0-9]{40}$")
REF = r"(?P<ref>[a-z]{20})"
DEPLOY_SLUG = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")  # deploy `slug` query parameter
FUNCTION_SLUG = r"(?P<slug>[A-Za-z0-9_-]+)"  # path parameter `function_slug`

# (method, path pattern) -> handler name. Anything else is a 404, as the API's router answers.
ROUTES = [
    ("GET", re.compile(rf"^/v1/projects/{REF}$"), "get_project"),
    ("GET", re.compile(rf"^/v1/projects/{REF}/secrets$"), "list_secrets"),
    ("POST", re.compile(rf"^/v1/projects/{REF}/secrets$"), "create_secrets"),
    ("DELETE", re.compile(rf"^/v1/projects/{REF}/secrets$"), "delete_secrets"),
    ("POST", re.compile(rf"^/v1/projects/{REF}/functions/deploy$"), "deploy_function"),
    ("GET", re.compile(rf"^/v1/projects/{REF}/functions/{FUNCTION_SLUG}$"), "get_function"),
    ("PATCH", re.compile(rf"^/v1/projects/{REF}/functions/{FUNCTION_SLUG}$"), "update_function"),
]

# CreateSecretBody items; DeleteSecretsBody is an array of strings.
SECRET_NAME_MAX, SECRET_VALUE_MAX = 256, 24576
# V1UpdateFunctionBody properties and their JSON types.
UPDATE_FUNCTION_FIELDS = {"name": str, "body": str, "verify_jwt": bool}
# FunctionDeployBody.metadata properties.
DEPLOY_METADATA_FIELDS = {"entrypoint_path": str, "import_map_path": str, "static_patterns": list,
                          "verify_jwt": bool, "name": str}
DEPLOY_QUERY = {"slug", "bundleOnly"}


class ApiFailure(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


@dataclass
class StoredFunction:
    id: str
    slug: str
    name: str
    version: int
    verify_jwt: bool
    entrypoint_path: str
    import_map_path: str
    files: dict[str, bytes]
    created_at: int
    updated_at: int
    status: str = "ACTIVE"

    def json(self) -> dict[str, Any]:
        digest = hashlib.sha256()
        for path in sorted(self.files):
            digest.update(path.encode() + b"\0" + self.files[path])
        return {"id": self.id, "slug": self.slug, "name": self.name, "status": self.status,
                "version": self.version, "created_at": self.created_at, "updated_at": self.updated_at,
                "verify_jwt": self.verify_jwt, "import_map": bool(self.import_map_path),
                "entrypoint_path": self.entrypoint_path, "import_map_path": self.import_map_path,
                "ezbr_sha256": digest.hexdigest()}


@dataclass
class ManagementApiServer(LocalHttpServer):
    """`with ManagementApiServer() as api:` gives `api.base_url`, `api.token`, `api.ref`, state."""

    ref: str = "abcdefghijklmnopqrst"
    token: str = field(default_factory=lambda: "sbp_" + secrets.token_hex(20))
    project_status: str = "ACTIVE_HEALTHY"
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> {value: digest, updated_at}
    functions: dict[str, StoredFunction] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: list[tuple[int, str | None]] = []

    # -- test controls ---------------------------------------------------------------------
    def fail_next(self, status: int, times: int = 1, *, retry_after: str | None = None) -> None:
        with self._lock:
            self._failures.extend([(status, retry_after)] * times)

    def put_secret(self, name: str, value: str) -> None:
        self.secrets[name] = {"value": hashlib.sha256(value.encode()).hexdigest(), "updated_at": _now_iso()}

    # -- request handling ------------------------------------------------------------------
    def _answer(self, request: RecordedRequest) -> Reply:
        try:
            self._authenticate(request.headers.get("authorization"))
            with self._lock:
                failure = self._failures.pop(0) if self._failures else None
            if failure:
                status, retry_after = failure
                raise ApiFailure(status, "Too many requests" if status == 429 else "Internal server error",
                                 {"Retry-After": retry_after} if retry_after else {})
            status, payload = self._route(request)
        except ApiFailure as exc:
            return json_reply(exc.status, {"message": exc.message}, exc.headers)
        return Reply(status) if payload is None else json_reply(status, payload)

    def _authenticate(self, header: str | None) -> None:
        scheme, _, token = (header or "").partition(" ")
        if scheme != "Bearer" or not TOKEN.match(token) or not secrets.compare_digest(token, self.token):
            raise ApiFailure(401, "Unauthorized")

    def _route(self, record: RecordedRequest) -> tuple[int, Any]:
        for method, pattern, name in ROUTES:
            match = pattern.match(record.path)
            if match and method == record.method:
                if match.group("ref") != self.ref:
                    raise ApiFailure(403, "Your account does not have the necessary privileges to access this endpoint")
                return getattr(self, "_" + name)(record, **match.groupdict())
        raise ApiFailure(404, f"Cannot {record.method} {record.path}")

    def _get_project(self, record: RecordedRequest, ref: str) -> tuple[int, Any]:
        _no_body(record)
        return 200, {"id": ref, "ref": ref, "organization_id": "org", "organization_slug": "org",
                     "name": "supactl-test", "region": "us-east-1", "created_at": "2026-01-01T00:00:00Z",
                     "status": self.project_status,
                     "database": {"host": f"db.{ref}.supabase.co", "version": "17.4.1",
                                  "postgres_engine": "17", "release_channel": "ga"}}

    def _list_secrets(self, record: RecordedRequest, ref: str) -> tuple[int, Any]:
        _no_body(record)
        return 200, [{"name": n, **s} for n, s in sorted(self.secrets.items())]

    def _create_secrets(self, record: RecordedRequest, ref: str) -> tuple[int, Any]:
        items = _json_body(record)
        if not isinstance(items, list):
            raise ApiFailure(400, "body must be an array of {name, value}")
        for item in items:
            if not isinstance(item, dict) or set(item) != {"name", "value"}:
                raise ApiFailure(400, "each secret must have exactly name and value")
            name, value = item["name"], item["value"]
            if not isinstance(name, str) or not isinstance(value, str):
                raise ApiFailure(400, "name and value must be strings")
            if name.startswith("SUPABASE_"):
                raise ApiFailure(400, "Secret name must not start with the SUPABASE_ prefix.")
            if not name or len(name) > SECRET_NAME_MAX or len(value) > SECRET_VALUE_MAX:
                raise ApiFailure(400, "secret name or value too long")
        for item in items:
            self.put_secret(item["name"], item["value"])
        return 201, None

    def _delete_secrets(self, record: RecordedRequest, ref: str) -> tuple[int, Any]:
        names = _json_body(record)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ApiFailure(400, "body must be an array of secret names")
        for name in names:
            self.secrets.pop(name, None)
        return 200, None

    def _get_function(self, record: RecordedRequest, ref: str, slug: str) -> tuple[int, Any]:
        _no_body(record)
        if record.query:
            raise ApiFailure(400, f"unexpected query parameters {sorted(record.query)}")
        function = self.functions.get(slug)
        if function is None:
            raise ApiFailure(404, "Function not found")
        return 200, function.json()

    def _update_function(self, record: RecordedRequest, ref: str, slug: str) -> tuple[int, Any]:
        function = self.functions.get(slug)
        if function is None:
            raise ApiFailure(404, "Function not found")
        changes = _json_body(record)
        if not isinstance(changes, dict):
            raise ApiFailure(400, "body must be an object")
        _check_fields(changes, UPDATE_FUNCTION_FIELDS, "V1UpdateFunctionBody")
        if "verify_jwt" in changes:
            function.verify_jwt = changes["verify_jwt"]
        if "name" in changes:
            function.name = changes["name"]
        function.updated_at = _now_ms()
        return 200, function.json()

    def _deploy_function(self, record: RecordedRequest, ref: str) -> tuple[int, Any]:
        unknown = set(record.query) - DEPLOY_QUERY
        if unknown:
            raise ApiFailure(400, f"unexpected query parameters {sorted(unknown)}")
        slug = (record.query.get("slug") or [""])[0]
        if not DEPLOY_SLUG.match(slug):
            raise ApiFailure(400, "slug must match ^[A-Za-z][A-Za-z0-9_-]*$")
        metadata, files = _parse_deploy_form(record)
        _check_fields(metadata, DEPLOY_METADATA_FIELDS, "FunctionDeployBody.metadata")
        entrypoint = metadata.get("entrypoint_path")
        if not entrypoint:
            raise ApiFailure(400, "metadata.entrypoint_path is required")
        if entrypoint not in files:
            raise ApiFailure(400, f"entrypoint {entrypoint} was not uploaded")
        import_map = metadata.get("import_map_path") or ""
        if import_map and import_map not in files:
            raise ApiFailure(400, f"import map {import_map} was not uploaded")
        if not all(isinstance(p, str) for p in metadata.get("static_patterns", [])):
            raise ApiFailure(400, "static_patterns must be strings")
        now = _now_ms()
        previous = self.functions.get(slug)
        self.functions[slug] = StoredFunction(
            id=previous.id if previous else secrets.token_hex(16), slug=slug,
            name=metadata.get("name") or slug, version=previous.version + 1 if previous else 1,
            verify_jwt=metadata.get("verify_jwt", True), entrypoint_path=entrypoint,
            import_map_path=import_map, files=files,
            created_at=previous.created_at if previous else now, updated_at=now)
        return 201, self.functions[slug].json()


def _parse_deploy_form(record: RecordedRequest) -> tuple[dict[str, Any], dict[str, bytes]]:
    if not (record.content_type or "").startswith("multipart/form-data; boundary="):
        raise ApiFailure(415, "deploy takes multipart/form-data")
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + record.content_type.encode() + b"\r\n\r\n" + record.body)
    if not message.is_multipart():
        raise ApiFailure(400, "malformed multipart body")
    metadata: dict[str, Any] | None = None
    files: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name == "metadata":
            try:
                metadata = json.loads(part.get_payload(decode=True))
            except ValueError:
                raise ApiFailure(400, "metadata is not JSON") from None
        elif name == "file":
            filename = part.get_filename()
            if not filename or filename.startswith("/") or ".." in filename.split("/"):
                raise ApiFailure(400, f"bad file name {filename!r}")
            if filename in files:
                raise ApiFailure(400, f"{filename} uploaded twice")
            files[filename] = part.get_payload(decode=True) or b""
        else:
            raise ApiFailure(400, f"unexpected form field {name!r}")
    if not isinstance(metadata, dict):
        raise ApiFailure(400, "metadata is required")
    return metadata, files


def _check_fields(body: dict[str, Any], allowed: dict[str, type], schema: str) -> None:
    for key, value in body.items():
        if key not in allowed:
            raise ApiFailure(400, f"{schema}: property {key} should not exist")
        if not isinstance(value, allowed[key]):
            raise ApiFailure(400, f"{schema}: {key} must be a {allowed[key].__name__}")


def _json_body(record: RecordedRequest) -> Any:
    if not (record.content_type or "").startswith("application/json"):
        raise ApiFailure(415, "expected Content-Type application/json")
    try:
        return record.json()
    except ValueError:
        raise ApiFailure(400, "body is not JSON") from None


def _no_body(record: RecordedRequest) -> None:
    if record.body:
        raise ApiFailure(400, f"{record.method} takes no body")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
