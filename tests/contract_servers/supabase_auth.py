"""A local stand-in for Supabase Auth's admin API (GoTrue behind the API gateway).

From the shared contracts (`supabase-auth-openapi.yaml`): `GET /admin/users?page&per_page` ->
`{aud, users}`, `GET|PUT /admin/users/{uuid}`, `POST /invite {email, data?}`. The gateway wants
`apikey`; GoTrue wants a bearer whose role is service_role: a wrong apikey is the gateway's 401
`{message}`, a missing bearer 401 `no_authorization`, a bad one 401 `bad_jwt`, the anon key 403
`not_admin`, all as `{code, error_code, msg}`. `app_metadata` on PUT merges key by key and a null
deletes the key (GoTrue's `User.UpdateAppMetaData`). Invite creates a user with `invited_at` and
refuses (422 `email_exists`) an address that already has a confirmed account. Users are kept in
memory; every request is recorded.

Stricter than the real service on purpose: PUT bodies may only carry `app_metadata`.
"""

from __future__ import annotations

import re
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .local_http import LocalHttpServer, RecordedRequest, Reply, json_reply

USER_PATH = re.compile(r"^/admin/users/(?P<id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
DEFAULT_PER_PAGE = 50  # the spec's default


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class AuthFailure(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(str(body))
        self.status, self.body = status, body


def _gotrue_error(status: int, error_code: str, msg: str) -> AuthFailure:
    return AuthFailure(status, {"code": status, "error_code": error_code, "msg": msg})


@dataclass
class SupabaseAuthServer(LocalHttpServer):
    service_role_key: str = field(default_factory=lambda: "sb_secret_" + secrets.token_urlsafe(24))
    anon_key: str = field(default_factory=lambda: "sb_anon_" + secrets.token_urlsafe(24))
    users: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    # -- test controls ---------------------------------------------------------------------
    def add_user(self, email: str, app_metadata: dict[str, Any] | None = None, *, confirmed: bool = True) -> dict:
        user = {"id": str(uuid.uuid4()), "aud": "authenticated", "role": "authenticated", "email": email,
                "email_confirmed_at": _now() if confirmed else None, "phone": "",
                "app_metadata": {"provider": "email", "providers": ["email"], **(app_metadata or {})},
                "user_metadata": {}, "identities": [], "created_at": _now(), "updated_at": _now()}
        self.users[user["id"]] = user
        return user

    def user_by_email(self, email: str) -> dict | None:
        return next((u for u in self.users.values() if u["email"] == email), None)

    # -- HTTP ------------------------------------------------------------------------------
    def _answer(self, request: RecordedRequest) -> Reply:
        try:
            body = None
            if request.body:
                if not (request.content_type or "").startswith("application/json"):
                    raise _gotrue_error(400, "bad_json", "Content-Type must be application/json")
                try:
                    body = request.json()
                except ValueError:
                    raise _gotrue_error(400, "bad_json", "Could not parse request body as JSON") from None
            with self._lock:
                self._authorize(request)
                status, answer = self._route(request, body)
        except AuthFailure as failure:
            status, answer = failure.status, failure.body
        return json_reply(status, answer)

    def _authorize(self, request: RecordedRequest) -> None:
        apikey = request.headers.get("apikey")
        if not apikey:
            raise AuthFailure(401, {"message": "No API key found in request"})
        if apikey not in (self.service_role_key, self.anon_key):
            raise AuthFailure(401, {"message": "Invalid API key",
                                    "hint": "Double check your Supabase `anon` or `service_role` API key."})
        auth = request.headers.get("authorization") or ""
        if not auth.startswith("Bearer "):
            raise _gotrue_error(401, "no_authorization", "This endpoint requires a Bearer token")
        bearer = auth[len("Bearer "):]
        if bearer == self.anon_key:
            raise _gotrue_error(403, "not_admin", "User not allowed")
        if bearer != self.service_role_key:
            raise _gotrue_error(401, "bad_jwt", "invalid JWT: unable to parse or verify signature")

    def _route(self, req: RecordedRequest, body: Any) -> tuple[int, Any]:
        if req.path == "/admin/users" and req.method == "GET":
            return 200, self._list(req)
        if req.path == "/invite" and req.method == "POST":
            return 200, self._invite(body)
        match = USER_PATH.match(req.path)
        if match and req.method in ("GET", "PUT"):
            user = self.users.get(match["id"])
            if user is None:
                raise _gotrue_error(404, "user_not_found", "User not found")
            if req.method == "PUT":
                self._update(user, body)
            return 200, user
        raise AuthFailure(404, {"message": "no Route matched with those values"})

    def _list(self, req: RecordedRequest) -> dict:
        def number(name: str, default: int) -> int:
            value = req.query.get(name, [""])[0] or str(default)
            if not value.isdigit() or int(value) < 1:
                raise _gotrue_error(400, "validation_failed", f"Bad Pagination Parameters: {name}")
            return int(value)

        page, per_page = number("page", 1), number("per_page", DEFAULT_PER_PAGE)
        ordered = list(self.users.values())
        return {"aud": "authenticated", "users": ordered[(page - 1) * per_page: page * per_page]}

    def _invite(self, body: Any) -> dict:
        if not isinstance(body, dict) or not isinstance(body.get("email"), str) or "@" not in body["email"]:
            raise _gotrue_error(400, "validation_failed", "Unable to validate email address: invalid format")
        existing = self.user_by_email(body["email"].lower())
        if existing and existing.get("email_confirmed_at"):
            raise _gotrue_error(422, "email_exists", "A user with this email address has already been registered")
        user = existing or self.add_user(body["email"].lower(), confirmed=False)
        user["invited_at"] = _now()
        user["user_metadata"] = body.get("data") or user["user_metadata"]
        return user

    def _update(self, user: dict, body: Any) -> None:
        if not isinstance(body, dict) or set(body) - {"app_metadata"}:
            raise _gotrue_error(400, "validation_failed", "this stand-in accepts only app_metadata")
        changes = body.get("app_metadata")
        if changes is not None:
            if not isinstance(changes, dict):
                raise _gotrue_error(400, "bad_json", "app_metadata must be an object")
            for key, value in changes.items():
                if value is None:
                    user["app_metadata"].pop(key, None)
                else:
                    user["app_metadata"][key] = value
        user["updated_at"] = _now()
