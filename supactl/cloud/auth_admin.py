"""Supabase Auth's admin API (GoTrue), called with the project's service-role key.

Only the documented endpoints supactl needs (shared contracts, `supabase-auth-openapi.yaml`):
`GET /admin/users?page&per_page`, `GET|PUT /admin/users/{id}`, `POST /invite`. Every request
carries the key twice, as `apikey` (the API gateway) and as the bearer (GoTrue's admin check).
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import httpx

from supactl import config
from supactl.cloud.http_client import RetryPolicy, Service, Trace, api_client, default_render_error
from supactl.errors import ApiError, ConfigError

# GoTrue caps per_page silently; 1000 is what its admin list accepts in one page.
USERS_PER_PAGE = 1000
# A bound on paging: 100 pages of 1000 users. A project with more users needs a lookup by id.
MAX_USER_PAGES = 100

WHERE_SERVICE_ROLE_KEY = ("the service_role key (or a secret key, sb_secret_…) under Project Settings > API Keys; "
                          "never the anon / publishable key")


def _render_error(response: httpx.Response) -> str:
    """GoTrue answers `{code, error_code, msg}`, the gateway in front `{message}`: the shared
    renderer reads either; GoTrue's error_code is added, since it names the cause exactly."""
    message = default_render_error(response)
    try:
        body = response.json()
    except ValueError:
        return message
    code = body.get("error_code") if isinstance(body, dict) else None
    return message + (f" [{code}]" if isinstance(code, str) else "")


def _hint(status: int) -> str | None:
    if status in (401, 403):
        return "check SUPABASE_SERVICE_ROLE_KEY: " + WHERE_SERVICE_ROLE_KEY
    return None


AUTH_SERVICE = Service("Supabase Auth", _render_error, _hint)


@dataclass(frozen=True)
class AuthSettings:
    url: str  # the Auth base URL, e.g. https://<ref>.supabase.co/auth/v1
    service_role_key: str = field(repr=False)


def _jwt_role(key: str) -> str | None:
    parts = key.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    return claims.get("role") if isinstance(claims, dict) else None


def service_role_key(flag: str | None = None, *, project_dir: Path | None = None,
                     environ: Mapping[str, str] | None = None) -> str:
    key = config.lookup("SUPABASE_SERVICE_ROLE_KEY", flag, project_dir=project_dir, environ=environ, secret=True)
    if not key:
        raise ConfigError("SUPABASE_SERVICE_ROLE_KEY is not set",
                          hint="pass --service-role-key or set SUPABASE_SERVICE_ROLE_KEY (environment or .env); "
                          + WHERE_SERVICE_ROLE_KEY)
    # The anon key is public and can never reach the admin API; say so before a request is made.
    if key.startswith("sb_publishable_") or _jwt_role(key) == "anon":
        raise ConfigError("SUPABASE_SERVICE_ROLE_KEY holds the anon / publishable key",
                          hint=WHERE_SERVICE_ROLE_KEY)
    return key


def auth_url(*, project_ref_flag: str | None = None, project_dir: Path | None = None,
             environ: Mapping[str, str] | None = None) -> str:
    """SUPABASE_AUTH_URL (tests, self-hosting) > SUPABASE_URL + /auth/v1 > https://<ref>.supabase.co/auth/v1."""
    environ = os.environ if environ is None else environ
    url = config.lookup("SUPABASE_AUTH_URL", project_dir=project_dir, environ=environ)
    if not url:
        base = config.lookup("SUPABASE_URL", project_dir=project_dir, environ=environ)
        if not base:
            ref = config.project_ref(project_ref_flag, project_dir=project_dir, environ=environ)
            base = f"https://{ref}.supabase.co"
        url = base.rstrip("/") + "/auth/v1"
    if not url.startswith(("https://", "http://")):
        raise ConfigError(f"the Supabase Auth URL must be an http(s) URL, got {url!r}",
                          hint="set SUPABASE_URL=https://<ref>.supabase.co (or SUPABASE_AUTH_URL)")
    return url.rstrip("/")


def auth_settings(*, service_role_key_flag: str | None = None, project_ref_flag: str | None = None,
                  project_dir: Path | None = None, environ: Mapping[str, str] | None = None) -> AuthSettings:
    """Everything needed to call the admin API, checked before any request is made."""
    key = service_role_key(service_role_key_flag, project_dir=project_dir, environ=environ)
    return AuthSettings(auth_url(project_ref_flag=project_ref_flag, project_dir=project_dir, environ=environ), key)


def auth_admin_client(settings: AuthSettings, *, trace: Trace | None = None, retry: RetryPolicy | None = None,
                      transport: httpx.BaseTransport | None = None) -> httpx.Client:
    key = settings.service_role_key
    return api_client(settings.url, AUTH_SERVICE, headers={"apikey": key, "Authorization": f"Bearer {key}"},
                      trace=trace, retry=retry, transport=transport)


@dataclass(frozen=True)
class AuthUser:
    id: str
    email: str | None
    app_metadata: dict[str, Any]
    invited_at: str | None = None
    last_sign_in_at: str | None = None

    @classmethod
    def from_json(cls, body: Any) -> "AuthUser":
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise ApiError("Supabase Auth answered something that is not a user")
        meta = body.get("app_metadata")
        return cls(body["id"], body.get("email"), meta if isinstance(meta, dict) else {},
                   body.get("invited_at"), body.get("last_sign_in_at"))


def list_users(client: httpx.Client, *, per_page: int = USERS_PER_PAGE, max_pages: int = MAX_USER_PAGES):
    """Every user, page by page: a page shorter than `per_page` is the last."""
    for page in range(1, max_pages + 1):
        body = client.get("/admin/users", params={"page": page, "per_page": per_page}).json()
        users = body.get("users") if isinstance(body, dict) else None
        if not isinstance(users, list):
            raise ApiError("Supabase Auth's user list has no `users` array")
        for user in users:
            yield AuthUser.from_json(user)
        if len(users) < per_page:
            return
    raise ApiError(f"more than {max_pages * per_page} users: stopped paging the Auth user list",
                   hint="remove members by id in the Supabase dashboard, or raise MAX_USER_PAGES")


def find_user_by_email(client: httpx.Client, email: str, **paging: int) -> AuthUser | None:
    wanted = email.strip().lower()
    return next((u for u in list_users(client, **paging) if (u.email or "").lower() == wanted), None)


def update_app_metadata(client: httpx.Client, user_id: str, changes: dict[str, Any]) -> AuthUser:
    """GoTrue merges `app_metadata` key by key and deletes keys sent as null, so only the keys we
    own are sent: the user's other app_metadata (provider, roles set by others) is kept."""
    return AuthUser.from_json(client.put(f"/admin/users/{user_id}", json={"app_metadata": changes}).json())


def invite(client: httpx.Client, email: str) -> AuthUser:
    """Supabase sends its invite email; `data` (user_metadata) is left out on purpose: user-editable."""
    return AuthUser.from_json(client.post("/invite", json={"email": email}).json())
